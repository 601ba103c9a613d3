#!/usr/bin/env bash
# The whole test suite (what .ci/run runs). Stages can be picked: tools/test.sh unit sanity
#   static    ruff on all Python
#   unit      pytest over module_utils and modules with real-world fixtures
#   sanity    ansible-test sanity (no ignore files) on a copy of the tracked tree
#   lint      ansible-lint, production profile
#   molecule  role scenarios on real Debian VMs booted with QEMU (see lab/)
#   chain     lab/chain: site.yml end to end on two lab VMs and the API stand-ins, run twice
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(static unit sanity lint molecule chain)

tools/setup.sh --test
# shellcheck source=tools/env.sh
. tools/env.sh

started=$(date +%s)
made_trees=()
cleanup() { [ ${#made_trees[@]} -eq 0 ] || rm -rf "${made_trees[@]}"; }
trap cleanup EXIT
stamp() { echo "== [$(( $(date +%s) - started ))s] $*"; }

# A copy of what git tracks (plus new, unignored files), laid out as ansible_collections/homelab/gpu_passthrough.
tracked_copy() {
  local top dest
  mkdir -p "$ROOT/.cache"
  top=$(mktemp -d "$ROOT/.cache/tree.XXXXXX")
  dest="$top/ansible_collections/homelab/gpu_passthrough"
  mkdir -p "$dest"
  git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$dest"
  # ansible-test lists a collection's files with git; without a repository it finds no targets.
  (cd "$dest" && git init -q && git add -A)
  echo "$dest"
}

for stage in "${stages[@]}"; do
  case "$stage" in
    static)
      stamp "ruff"
      ruff check .
      ;;
    unit)
      stamp "pytest"
      python -m pytest -q
      ;;
    sanity)
      stamp "ansible-test sanity"
      # ansible-test bootstraps pip in its venvs with a script from a host outside the reachable registries.
      pip_version=$(python -c 'import ansible_test._internal.python_requirements as r, inspect, re; print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r.get_venv_packages)).group(1))')
      mkdir -p ~/.ansible/test/cache
      cp tools/get_pip_offline.py ~/.ansible/test/cache/get_pip_"${pip_version//./_}".py
      dest=$(tracked_copy)
      made_trees+=("${dest%/ansible_collections/*}")
      # SANITY_ARGS narrows the run, e.g. "--test validate-modules plugins/modules/iommu_facts.py"
      # shellcheck disable=SC2086
      (cd "$dest" && ansible-test sanity --requirements --python 3.11 --color no ${SANITY_ARGS:-})
      ;;
    lint)
      stamp "ansible-lint (production profile)"
      ansible-lint --profile production
      ;;
    molecule)
      stamp "molecule"
      shopt -s nullglob
      for scenario in molecule/*/molecule.yml; do
        name=$(basename "$(dirname "$scenario")")
        stamp "molecule test -s $name"
        molecule test -s "$name"
      done
      ;;
    chain)
      stamp "lab/chain up --twice (tests/lab)"
      python -m pytest -q tests/lab
      ;;
    *)
      echo "unknown stage: $stage" >&2
      exit 2
      ;;
  esac
done
stamp "all stages passed: ${stages[*]}"
