"""Every default of a run, defined here once and imported by everything that needs one.

The command line's option defaults, the app's launch options and settings screen, the engine
spec, the snapshot loader and ``gendiff score`` all read these. This module imports nothing, so
any layer may import it.
"""

DEFAULT_ENGINES = ("hf-single", "hf-left", "hf-right", "packed")
SCORE_ENGINES = ("hf-single:attn=eager", "hf-single:attn=sdpa")  # gendiff score: eager vs sdpa
DTYPE = "float32"
DTYPES = ("float32", "bfloat16", "float16")
ATTN = "sdpa"
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
DEVICE = "cpu"
BATCH_SIZE = 16
MAX_NEW_TOKENS = 32
TOP_K = 5
STOP_AT_EOS = True
FRAGILE_THRESHOLD = 0.05
TOLERANCE = 1e-3  # --bisect: the relative difference that counts as a real split
RECHECK_DTYPE = "float32"
KLD_CTX = 512  # gendiff score --kl-divergence-base-out: tokens per chunk (llama-perplexity's -c default)

# Prompt files: a bigger file is refused before it is read (a prompt file is text people edit;
# 64 MiB is ~16k prompts of 4k characters), a longer prompt before it is tokenized (4M characters
# is ~1M tokens, past the context window of the models gendiff runs on one machine).
MAX_PROMPT_FILE_BYTES = 64 * 1024 * 1024
MAX_PROMPT_CHARS = 4_000_000

# gendiff run --shards N --ray: CPUs of the Ray instance --ray local starts, retries of a shard whose worker dies
RAY_LOCAL_CPUS = 2
SHARD_RETRIES = 2

# gendiff determinism: trials per protocol, the seed of its random layout, the largest needle batch
DETERMINISM_TRIALS = 8
DETERMINISM_SEED = 0
DETERMINISM_MAX_BATCH = 8

# --stats / gendiff score on an engine that reports teacher-forced logprobs instead of replaying
# (vLLM's prompt_logprobs, a vLLM server's echo + logprobs): how many candidates per position it
# is asked for. A vocabulary this size or smaller is asked for whole (the full KL divergence);
# a larger one for its top FORCED_LOGPROBS (the KL of that coarsening: a lower bound, labelled).
FORCED_LOGPROBS = 4096

# vllm:speculative=ngram: vLLM's prompt-lookup proposer; draft tokens per step, longest n-gram looked up
NGRAM_SPECULATIVE_TOKENS = 3
NGRAM_PROMPT_LOOKUP_MAX = 3
