"""Line charts as inline SVG, drawn on the server: training loss and DPO rewards by step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.kernel.models import TrainingEvent

WIDTH, HEIGHT = 640, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 12, 28
MAX_POINTS = 600
"""More points than pixels draw nothing new: longer series are thinned to this many."""
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c")


@dataclass(frozen=True)
class Line:
    name: str
    color: str
    points: str
    """SVG polyline points, "x,y x,y ..."."""
    count: int
    last: float


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    zero_y: float | None
    """Where y = 0 runs, when the range crosses it (reward margins start near 0)."""
    width: int = WIDTH
    height: int = HEIGHT
    left: int = MARGIN_LEFT
    right: int = WIDTH - MARGIN_RIGHT
    top: int = MARGIN_TOP
    bottom: int = HEIGHT - MARGIN_BOTTOM


def thin(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """At most MAX_POINTS of the points, evenly spread, keeping the first and the last."""
    if len(points) <= MAX_POINTS:
        return list(points)
    stride = (len(points) - 1) / (MAX_POINTS - 1)
    return [points[round(i * stride)] for i in range(MAX_POINTS)]


def line_chart(title: str, series: dict[str, list[tuple[float, float]]]) -> Chart | None:
    """A chart of the non-empty series (name -> (step, value) points); None if all are empty."""
    series = {name: thin(points) for name, points in series.items() if points}
    if not series:
        return None
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(ys), max(ys)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    if y_high == y_low:
        pad = abs(y_low) * 0.1 or 1.0
        y_low, y_high = y_low - pad, y_high + pad
    chart_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    chart_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def px(x: float) -> float:
        return MARGIN_LEFT + (x - x_low) / (x_high - x_low) * chart_width

    def py(y: float) -> float:
        return MARGIN_TOP + (y_high - y) / (y_high - y_low) * chart_height

    lines = [
        Line(
            name=name,
            color=PALETTE[position % len(PALETTE)],
            points=" ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points),
            count=len(points),
            last=points[-1][1],
        )
        for position, (name, points) in enumerate(series.items())
    ]
    # Steps are whole numbers: a short run gets one tick per step, never two labelled alike.
    x_ticks = [Tick(px(x), f"{x:,}") for x in sorted({round(x) for x in spread(x_low, x_high)})]
    y_ticks = [Tick(py(y), text) for y, text in distinct_labels(spread(y_low, y_high))]
    return Chart(
        title=title,
        lines=lines,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        zero_y=py(0.0) if y_low < 0 < y_high else None,
    )


def spread(low: float, high: float, count: int = 5) -> list[float]:
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def distinct_labels(values: list[float]) -> list[tuple[float, str]]:
    """Each value with a label that tells it from the others: three significant digits, up to
    six where a narrow range needs them (wider labels leave the margin); ticks that still read
    alike are shown once."""
    for digits in range(3, 7):
        labels = [f"{value:.{digits}g}" for value in values]
        if len(set(labels)) == len(labels):
            return list(zip(values, labels, strict=True))
    seen: dict[str, float] = {}
    for value, text in zip(values, labels, strict=True):
        seen.setdefault(text, value)
    return [(value, text) for text, value in seen.items()]


LOSS_SERIES = (("metrics", "loss"), ("eval", "eval_loss"))
REWARD_SERIES = (
    ("metrics", "rewards/margins"),
    ("metrics", "rewards/chosen"),
    ("metrics", "rewards/rejected"),
)
ACCURACY_SERIES = (("metrics", "rewards/accuracies"),)


def series_of(
    events: Sequence[TrainingEvent], wanted: tuple[tuple[str, str], ...]
) -> dict[str, list[tuple[float, float]]]:
    """(step, value) points of each (event kind, metric name) the job reported."""
    series: dict[str, list[tuple[float, float]]] = {name: [] for _, name in wanted}
    for event in events:
        if event.step is None or not event.metrics:
            continue
        for kind, name in wanted:
            value = event.metrics.get(name)
            if event.kind == kind and isinstance(value, int | float):
                series[name].append((float(event.step), float(value)))
    return series


def job_charts(events: Sequence[TrainingEvent]) -> list[Chart]:
    """Loss by step, and for DPO the implicit rewards (margins, chosen, rejected) and accuracy."""
    charts = [
        line_chart("Loss", series_of(events, LOSS_SERIES)),
        line_chart("DPO rewards", series_of(events, REWARD_SERIES)),
        line_chart("DPO reward accuracy", series_of(events, ACCURACY_SERIES)),
    ]
    return [chart for chart in charts if chart is not None]


@dataclass(frozen=True)
class Bar:
    series: str
    """Whose bar: the model (evaluation) it measures."""
    group: str
    """The task it is measured on."""
    color: str
    x: float
    y: float
    width: float
    height: float
    value: float
    low_y: float
    high_y: float
    """The whisker: the interval's ends, in pixels."""


@dataclass(frozen=True)
class BarChart:
    title: str
    series: list[tuple[str, str]]
    """(name, color) of each series, for the key."""
    bars: list[Bar]
    groups: list[Tick]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = MARGIN_LEFT
    right: int = WIDTH - MARGIN_RIGHT
    top: int = MARGIN_TOP
    bottom: int = HEIGHT - MARGIN_BOTTOM


BarValue = tuple[float, float, float]
"""A share with its interval: (value, low, high), all 0 to 1."""


def bar_chart(
    title: str, groups: list[str], series: dict[str, dict[str, BarValue | None]]
) -> BarChart | None:
    """Grouped bars of shares (0 to 1) with interval whiskers: per group (task) one bar per
    series (model); a series without a value in a group leaves a gap. None if nothing to draw."""
    if not groups or not series:
        return None
    chart_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    chart_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    slot = chart_width / len(groups)
    bar_width = slot * 0.8 / len(series)

    def py(share: float) -> float:
        return MARGIN_TOP + (1.0 - share) * chart_height

    bars = []
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    for g, group in enumerate(groups):
        for s, name in enumerate(series):
            measured = series[name].get(group)
            if measured is None:
                continue
            value, low, high = measured
            x = MARGIN_LEFT + g * slot + slot * 0.1 + s * bar_width
            bars.append(
                Bar(
                    series=name,
                    group=group,
                    color=colors[name],
                    x=x,
                    y=py(value),
                    width=bar_width * 0.9,
                    height=py(0.0) - py(value),
                    value=value,
                    low_y=py(low),
                    high_y=py(high),
                )
            )
    return BarChart(
        title=title,
        series=list(colors.items()),
        bars=bars,
        groups=[Tick(MARGIN_LEFT + (g + 0.5) * slot, group) for g, group in enumerate(groups)],
        y_ticks=[Tick(py(share), f"{share:.2g}") for share in spread(0.0, 1.0)],
    )
