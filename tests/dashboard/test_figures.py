"""How the dashboard writes a setting's value: numbers as a person reads them, and settings
made of settings (a job's early_stopping) as name-value pairs, not a Python dict."""

from __future__ import annotations

from app.dashboard.routes import figure


def test_numbers_flags_and_nothing() -> None:
    assert figure(12000) == "12,000"
    assert figure(3.0) == "3"
    assert figure(5e-06) == "5e-06"
    assert figure(0.95) == "0.95"
    assert figure(True) == "yes" and figure(False) == "no"
    assert figure(None) == "—"
    assert figure("cosine") == "cosine"


def test_nested_settings_read_as_name_value_pairs() -> None:
    assert figure({"patience": 3, "min_delta": 0.0}) == "patience 3, min_delta 0"
    assert figure({"patience": 2, "min_delta": 0.001}) == "patience 2, min_delta 0.001"
    assert figure(["q_proj", "v_proj"]) == "q_proj, v_proj"
    assert figure({}) == "—" and figure([]) == "—"
