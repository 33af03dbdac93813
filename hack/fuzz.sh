#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time, one after the other.
#
#   FUZZTIME=30s        how long each target runs (a go test -fuzztime: 30s, 10000x)
#   FUZZ_PARALLEL=1     fuzzing workers per target (go test -parallel)
#   FUZZ_MATCH=.        only targets whose name matches this regex (grep -E)
#   FUZZ_PKGS=./...     packages to look in
#   FUZZ_TIMEOUT        go test -timeout; default FUZZTIME + 5m (go test's own 10m otherwise)
#
# Plain `go test` replays the corpora committed under testdata/fuzz/<FuzzName>/; this runs the
# fuzzers themselves. A failing input is written there by go test: commit it, with a readable
# name, alongside the fix. Exits non-zero when a target fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
FUZZ_MATCH=${FUZZ_MATCH:-.}
read -r -a pkgs <<<"${FUZZ_PKGS:-./...}"

# The test binary's -timeout covers the fuzzing too: keep it above FUZZTIME, or a long soak
# would panic at go test's default 10m. It stays, so that a hung target still ends.
timeout=${FUZZ_TIMEOUT:-}
if [[ -z $timeout && $FUZZTIME =~ ^([0-9]+)(s|m|h)$ ]]; then
  n=${BASH_REMATCH[1]}
  case ${BASH_REMATCH[2]} in
    m) n=$((n * 60)) ;;
    h) n=$((n * 3600)) ;;
  esac
  timeout=$((n + 300))s
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# Packages whose tests declare a fuzz target; `go test -list` then names the targets the build
# (tags, GOOS) really has, without compiling the test binaries of every other package.
targets=() # importpath, dir and target, tab-separated
while IFS=$'\t' read -r path dir; do
  grep -qs '^func Fuzz' "$dir"/*_test.go || continue
  list=$("$GO" test -list '^Fuzz' "$path") || { echo "fuzz: cannot list the fuzz targets of $path" >&2; exit 1; }
  while read -r t; do
    [[ $t == Fuzz* ]] && grep -Eq -- "$FUZZ_MATCH" <<<"$t" && targets+=("$path"$'\t'"$dir"$'\t'"$t")
  done <<<"$list"
done < <("$GO" list -f $'{{.ImportPath}}\t{{.Dir}}' "${pkgs[@]}")

if ((${#targets[@]} == 0)); then
  echo "fuzz: no fuzz targets in ${pkgs[*]} matching $FUZZ_MATCH" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each, -parallel $FUZZ_PARALLEL"

results=()
failed=0
for entry in "${targets[@]}"; do
  IFS=$'\t' read -r path dir t <<<"$entry"
  log=$logs/$t.log
  start=$SECONDS
  rc=0
  (cd "$dir" && "$GO" test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" -parallel "$FUZZ_PARALLEL" ${timeout:+-timeout "$timeout"} .) >"$log" 2>&1 || rc=$?
  secs=$((SECONDS - start))
  found=$(grep -o 'new interesting: [0-9]*' "$log" | tail -n1 | grep -o '[0-9]*$' || true)
  if ((rc == 0)); then
    result=pass
  else
    result=FAIL
    failed=1
  fi
  printf '%-45s %-30s %4ds  %-4s  new corpus: %s\n' "$path" "$t" "$secs" "$result" "${found:-?}"
  if ((rc != 0)); then
    input=$(sed -n 's/.*Failing input written to \(.*\)$/\1/p' "$log" | tail -n1)
    if [[ -n $input ]]; then
      echo "    failing input: $dir/$input"
      echo "    reproduce:     (cd $dir && $GO test -run '^$t\$/$(basename "$input")\$' .)"
      echo "    fix the bug, rename the input readably and commit it under $(dirname "$dir/$input")/"
      echo "    so that plain go test replays it."
    else # a build failure, or a committed corpus entry failing before fuzzing began
      echo "    no failing input written; the end of the output:"
    fi
    tail -n 30 "$log" | sed 's/^/    | /'
  fi
  results+=("$t|$result")
done

echo
printf '%-32s | %s\n' target result
printf '%-32s-+-%s\n' "$(printf '%.0s-' {1..32})" ------
for r in "${results[@]}"; do
  printf '%-32s | %s\n' "${r%%|*}" "${r#*|}"
done
if ((failed)); then
  echo "fuzz: FAILED" >&2
  exit 1
fi
