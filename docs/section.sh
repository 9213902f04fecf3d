# Sourced by the docs/benchmarks-*.sh scripts: replace_section DOC BEGIN END FILE puts FILE
# (which starts with the BEGIN marker line and ends with the END one) in place of DOC's
# section between those markers, or appends it when DOC has none.
replace_section() {
  local doc=$1 begin=$2 end=$3 file=$4 out
  out=$(mktemp)
  if grep -qF "$begin" "$doc"; then
    awk -v b="$begin" -v e="$end" -v f="$file" '
      $0 == b { while ((getline line < f) > 0) print line; skip = 1; next }
      $0 == e { skip = 0; next }
      !skip' "$doc" >"$out"
  else
    { cat "$doc"; echo; cat "$file"; } >"$out"
  fi
  mv "$out" "$doc"
}
