# Sourced by the setup scripts: pip_quiet VENV ARGS… runs VENV's pip quietly, minus its notes
# about configured index folders that do not exist on this machine; keeps pip's exit status.
pip_quiet() {
  local venv=$1 log rc=0
  shift
  log=$(mktemp)
  "$venv/bin/pip" --disable-pip-version-check -q "$@" 2>"$log" || rc=$?
  grep -v "^WARNING: Location '.*' is ignored" "$log" >&2 || true
  rm -f "$log"
  return "$rc"
}
