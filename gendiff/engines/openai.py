"""The ``openai`` engine: a model behind an OpenAI-compatible server (vLLM, llama.cpp; SGLang as
an untested flavour), greedy, with top-k logprobs keyed by token id.

Spec: ``openai:url=http://HOST:PORT/v1,model=NAME[,concurrency=N][,flavour=F][,timeout=S][,retries=R]
[,api_key_env=VAR]``. ``api_key_env`` names an environment variable holding the server's key: read
when a request is made, sent as ``Authorization: Bearer``, never stored (the snapshot records the
variable's name only). A URL with a user name or password is refused (settings.check_no_credentials).
The local model folder (``--model``) supplies the tokenizer: prompts go to the server as token
ids, and before the run the server must be reachable, serve ``model``, tokenize every prompt as
gendiff does (a chat prompt: render its messages with the server's chat template to the ids of
the model's, else that prompt is not run here: :mod:`gendiff.engines.served_chat`), and key its
logprobs by id. Requests go out concurrently (``concurrency=all``, the
default, sends every prompt at once as production traffic would; ``1`` sends them one by one), so
the server's batching becomes a variable to diff. A failed request fails only its prompt. What
the server reports about what it runs (its model file, quantization, slots, build) is recorded
with the traces; gendiff's own dtype, attention and batch size are not (the server decides them).
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace
from typing import Any

from gendiff.engines.answers import BadAnswer, Expected, check_answer, check_token_ids
from gendiff.engines.base import Engine
from gendiff.engines.flavour import Flavour, ServedError
from gendiff.engines.flavours import FLAVOURS
from gendiff.engines.http_plumbing import each_row, error_text, retry_after, served_models
from gendiff.engines.loading import load_tokenizer
from gendiff.engines.served_chat import check_chat
from gendiff.engines.served_forced import served_forced_pass
from gendiff.engines.settings import EngineSpec, FreeOption, GenerationSettings, whole_number
from gendiff.engines.steps import TraceBuilder
from gendiff.errors import EngineError, GendiffError, InputError
from gendiff.records.chat import ChatMessage
from gendiff.records.forced import ForcedPass
from gendiff.records.trace import TokenStep, TopToken

HINT = "start it (docs/served.md) or fix url="
CHECK_TIMEOUT_S = 10.0  # for the checks without a prompt (models, version); timeout= is per prompt


def _check_url(value: str) -> str | None:
    return None if value.startswith(("http://", "https://")) else "must start with http:// or https://"


def _check_variable_name(value: str) -> str | None:
    ok = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)
    return None if ok else "must name an environment variable (letters, digits, _), not hold the key itself"


def _check_concurrency(value: str) -> str | None:
    return None if value == "all" or (value.isdigit() and int(value) >= 1) else "must be 'all' or a whole number >= 1"


def _check_seconds(value: str) -> str | None:
    try:
        return None if float(value) > 0 else "must be a number of seconds above 0"
    except ValueError:
        return "must be a number of seconds above 0"


class OpenAIServer(Engine):
    name = "openai"
    description = "a model behind an OpenAI-compatible server (vLLM, llama.cpp; SGLang untested), by token ids"
    applies = frozenset()  # the server decides dtype, attention, device and batching
    runs_apart = True  # it waits on the server: it runs while the in-process engines do
    forced_logprobs = True  # echo + logprobs (vLLM), logprob_start_len=0 (SGLang); not llama.cpp
    options = {
        "url": FreeOption(None, _check_url),
        "model": FreeOption(None, lambda v: None),
        "concurrency": FreeOption("all", _check_concurrency),
        "flavour": ("auto", *FLAVOURS),
        "timeout": FreeOption("120", _check_seconds),  # seconds for one prompt's answer
        "retries": FreeOption("3", whole_number(0)),  # of a refused connection, with backoff
        "api_key_env": FreeOption(None, _check_variable_name),  # the variable holding the key
    }

    def __init__(self, spec: EngineSpec, model_path: str) -> None:
        super().__init__(spec, model_path)
        missing = [key for key in ("url", "model") if not spec.options.get(key)]
        if missing:
            raise GendiffError(
                f"engine {spec.label}: needs {' and '.join(missing)}; e.g. openai:url=http://127.0.0.1:8000/v1,model=NAME"
            )
        self.key_variable = self.option("api_key_env")
        self._api_key()  # a missing variable is bad input, found before any model work
        self.url = str(self.option("url")).rstrip("/")
        self.root = self.url.removesuffix("/v1")
        self.model = str(self.option("model"))
        self.flavour: Flavour | None = None
        self.server_version: str | None = None
        self.server_reported: dict[str, Any] = {}

    def lane(self) -> str | None:
        """One lane per server: two engines sent to one server at once would batch together there
        (the very variable gendiff measures), so they go one after another."""
        return f"server {self.root}"

    def _api_key(self) -> str | None:
        """The key, read from the environment now (never kept); None without api_key_env."""
        if self.key_variable is None:
            return None
        key = os.environ.get(str(self.key_variable), "").strip()
        if not key:
            raise InputError(
                f"engine {self.spec.label}: api_key_env={self.key_variable}, but the environment variable "
                f"{self.key_variable} is not set or is empty; export {self.key_variable}=<the server's key> first"
            )
        return key

    def _headers(self) -> dict[str, str]:
        key = self._api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _scrub(self, text: str) -> str:
        """A server's or library's message without the key in it (a server may echo the header)."""
        key = os.environ.get(str(self.key_variable), "").strip() if self.key_variable else ""
        return text.replace(key, "***") if len(key) >= 4 else text

    def load(self) -> None:
        """The checks that need no prompts: reachable, serves ``model``, which flavour, which version."""
        import httpx

        transport = httpx.HTTPTransport(retries=self._retries())
        with httpx.Client(timeout=httpx.Timeout(CHECK_TIMEOUT_S, connect=5.0), transport=transport) as client:
            models = self._get(client, f"{self.url}/models")
            if models.status_code in (401, 403):
                given = f"the key in ${self.key_variable}" if self.key_variable else "no key"
                raise InputError(  # the key is the user's input
                    f"engine {self.spec.label}: the server at {self.url} refuses {given} "
                    f"({models.status_code}: {self._scrub(error_text(models))}); "
                    + ("check the variable's value" if self.key_variable else "give api_key_env=NAME")
                )
            served = served_models(models)
            if served is not None and self.model not in served:
                raise InputError(  # model= is the user's input
                    f"engine {self.spec.label}: the server at {self.url} serves {', '.join(served) or 'no model'}, "
                    f"not {self.model!r}; pass model=<one of those>"
                )
            self.flavour, self.server_version = self._detect(client)
            self.server_reported = self._reported(client, self.flavour)
        self.tokenizer = load_tokenizer(self.model_path)  # after the server checks: they fail in well under a second

    def settings_record(self) -> dict[str, Any]:
        record = super().settings_record()  # applies none of dtype/attn/device/batch_size: the server decides
        record["server"] = {
            "flavour": self.flavour.name if self.flavour else None,
            "flavour_tested": self.flavour.tested if self.flavour else None,
            "version": self.server_version,
            "reported": dict(self.server_reported),  # only what the server said, as it said it
        }
        return record

    def decode(self, builder: TraceBuilder) -> None:
        if self.flavour is None:
            self.load()
        errors = asyncio.run(self._run(builder))
        if len(errors) == len(builder.prompts):
            first = next(iter(errors.values()))
            raise EngineError(f"engine {self.spec.label}: every prompt failed; the first: {first}")
        for row, error in errors.items():
            builder.fail(row, error)

    async def _run(self, builder: TraceBuilder) -> dict[int, str]:
        """Check every prompt's tokenization, then generate; returns the failed rows' error lines.
        A wrong tokenization or string-keyed logprobs fail the whole engine (GendiffError)."""
        import httpx

        prompts, settings, cancel = builder.prompts, builder.settings, builder.cancel
        concurrency = self.option("concurrency")
        limit = len(prompts) if concurrency == "all" else int(str(concurrency))
        limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
        errors: dict[int, str] = {}
        # a refused connection is retried by httpx's transport (exponential backoff); a 429 by _post
        transport = httpx.AsyncHTTPTransport(retries=self._retries(), limits=limits)
        async with httpx.AsyncClient(timeout=self._timeout(), transport=transport) as client:

            async def check(row: int) -> None:
                chat = builder.chat(row)
                if chat is None:
                    problem = await self._check_tokenization(client, prompts[row])
                else:  # a chat prompt: the server's template must render the same ids, else not run here
                    problem = await self._check_chat(client, chat, prompts[row])
                if problem:
                    errors[row] = problem

            await each_row(range(len(prompts)), check, limit, cancel)

            async def ask(row: int) -> None:
                answer = await self._ask(client, prompts[row], settings)
                if isinstance(answer, str):
                    errors[row] = answer
                    return
                steps, finish = answer
                for step in steps:  # as each answer arrives, so the steps stream to on_step
                    builder.add(row, step)
                if builder.active(row) and len(steps) < settings.max_new_tokens:
                    last = steps[-1].token_id if steps else None
                    errors[row] = (
                        f"the server stopped after {len(steps)} tokens ({finish}, last token {last}) although it "
                        "was asked for more and gendiff saw no end of sequence: a stop token from its generation config?"
                    )

            await each_row([row for row in range(len(prompts)) if row not in errors], ask, limit, cancel)
        return errors

    def forced_problem(self) -> str | None:
        """llama.cpp's server has no prompt logprobs: said before any model work (an auto flavour is
        detected now; an unreachable server is left for the run to report)."""
        chosen = str(self.option("flavour"))
        if chosen == "auto" and self.flavour is None:
            try:
                self.load()
            except GendiffError:
                return None
        flavour = self.flavour if chosen == "auto" else FLAVOURS[chosen]
        refusal = flavour.forced_refusal if flavour is not None else None
        return f"engine {self.spec.label}: {refusal}" if refusal else None

    def forced_pass(self, prompts: list[list[int]], targets: dict[int, list[int]], top_k: int) -> ForcedPass:
        return served_forced_pass(self, prompts, targets, top_k)

    # ---- checks -------------------------------------------------------------------------------

    def _detect(self, client: Any) -> tuple[Flavour, str | None]:
        """The flavour (the option, or by which version endpoint answers) and the server's version."""
        chosen = self.option("flavour")
        order = list(FLAVOURS.values()) if chosen == "auto" else [FLAVOURS[str(chosen)]]
        for flavour in order:
            for path in flavour.version_paths:
                try:
                    answer = client.get(self.root + path, headers=self._headers())
                except Exception:
                    continue
                if answer.status_code == 200:
                    try:
                        return flavour, flavour.version(answer.json())
                    except ValueError:
                        continue
        # a generic OpenAI-compatible server without a version endpoint
        return FLAVOURS["openai"] if chosen == "auto" else order[0], None

    def _reported(self, client: Any, flavour: Flavour) -> dict[str, Any]:
        """What the server reports about what it runs (see Flavour.reported); an endpoint that
        does not answer with JSON is left out."""
        answers = {}
        for path in flavour.report_paths:
            try:
                answer = client.get(self.root + path, headers=self._headers())
                if answer.status_code == 200:
                    answers[path] = answer.json()
            except Exception:  # httpx errors, bad JSON: that endpoint reports nothing
                continue
        return flavour.reported(answers)

    async def _check_tokenization(self, client: Any, ids: list[int]) -> str | None:
        """The server must turn the prompt's text into exactly our ids, and answer with ids: else
        GendiffError. A request that fails returns its error line (that prompt fails)."""
        assert self.flavour is not None
        text = self.tokenizer.decode(ids)
        ours = self.tokenizer.encode(text)
        request = self.flavour.tokenize(self.model, text)
        answer = await self._post(client, request.path, request.body)
        if isinstance(answer, str):
            return f"checking its tokenization: {answer}"
        try:
            values, where = self.flavour.parse_tokens(answer)
            theirs = check_token_ids(values, where, self._vocab_size())
        except ServedError as exc:
            raise GendiffError(f"engine {self.spec.label}: {exc}; {_flavour_hint(self.flavour)}") from None
        except BadAnswer as exc:
            return f"checking its tokenization: {self._unusable(exc)}"
        # an echo (openai flavour) carries the one generated token after the prompt
        if theirs[: len(ours)] != ours or len(theirs) - len(ours) not in (0, 1):
            shown = text if len(text) <= 40 else text[:40] + "…"
            raise GendiffError(
                f"engine {self.spec.label}: the server tokenizes {shown!r} as {theirs[: len(ours) + 1]}, gendiff's "
                f"tokenizer ({self.model_path}) as {ours}; point --model at the folder the server loaded"
            )
        return None

    async def _check_chat(self, client: Any, messages: tuple[ChatMessage, ...], ids: list[int]) -> str | None:
        assert self.flavour is not None

        async def post(path: str, body: dict[str, Any]) -> Any:
            return await self._post(client, path, body)

        try:
            return await check_chat(
                post, self.flavour, self.model, messages, ids, self.tokenizer.piece, self._vocab_size()
            )
        except ServedError as exc:
            raise GendiffError(f"engine {self.spec.label}: {exc}; {_flavour_hint(self.flavour)}") from None

    # ---- requests -----------------------------------------------------------------------------

    async def _post(self, client: Any, path: str, body: dict[str, Any]) -> Any:
        """POST (``client``'s transport retries a refused connection) with retries of a 429 after
        its ``Retry-After`` (at most RETRY_AFTER_MAX_S): the answer's JSON, or an error line."""
        import httpx

        retries = self._retries()
        for attempt in range(retries + 1):
            try:
                answer = await client.post(self.root + path, json=body, headers=self._headers())
            except httpx.ConnectError as exc:
                return f"no connection to {self.root} after {retries + 1} tries ({exc})"
            except httpx.TimeoutException:
                return f"no answer within {self.option('timeout')} s (timeout=)"
            except httpx.HTTPError as exc:
                return f"the request failed: {type(exc).__name__}: {exc}"
            if answer.status_code != 429 or attempt == retries:
                break
            await asyncio.sleep(retry_after(answer, 0.5 * 2**attempt))
        if answer.status_code != 200:
            return f"server error {answer.status_code}: {self._scrub(error_text(answer))}"
        try:
            return answer.json()
        except ValueError:
            return f"the answer is not JSON: {self._scrub(error_text(answer))}"

    async def _ask(self, client: Any, prompt: list[int], settings: GenerationSettings) -> Any:
        """Generate for one prompt: (steps, the server's finish reason), or an error line.

        A flavour whose ``ignore_eos`` is a bias on EOS (llama.cpp) is never asked to ignore it:
        with ``stop_at_eos`` off, after the server stops at an end of generation the prompt and
        every token so far are resubmitted for the rest, so the model's own choice stays in the trace.
        """
        assert self.flavour is not None
        continues = self.flavour.eos_is_a_bias and not settings.stop_at_eos
        steps: list[TokenStep] = []
        while True:  # once, or again past an EOS the server stopped at (see Flavour.eos_is_a_bias)
            remaining = replace(settings, max_new_tokens=settings.max_new_tokens - len(steps))
            context = prompt + [step.token_id for step in steps]
            request = self.flavour.generate(self.model, context, remaining)
            answer = await self._post(client, request.path, request.body)
            if isinstance(answer, str):
                return answer
            expected = Expected(
                remaining.max_new_tokens,
                settings.top_k,
                self._vocab_size(),
                chosen_in_top=self.flavour.chosen_in_top,
                sorted_top=self.flavour.sorted_top,
            )
            try:
                parsed, finish = check_answer(self.flavour.parse(answer), expected)
            except ServedError as exc:
                raise GendiffError(f"engine {self.spec.label}: {exc}; {_flavour_hint(self.flavour)}") from None
            except BadAnswer as exc:
                return self._unusable(exc)
            steps += [self._step(*step, settings.top_k) for step in parsed]
            if not (continues and finish == "eos" and parsed and len(steps) < settings.max_new_tokens):
                return steps, finish

    def _unusable(self, exc: BadAnswer) -> str:
        """The error line of a prompt whose answer failed :func:`check_answer`."""
        return f"the server at {self.url} sent an unusable answer: {self._scrub(str(exc))}"

    def _vocab_size(self) -> int | None:
        """Rows of the model's embedding (every id the server may send is below), else the tokenizer's size."""
        return self.tokenizer.model_vocab_size or self.tokenizer.vocab_size

    def _step(self, token_id: int, logprob: float, candidates: list[tuple[int, float]], top_k: int) -> TokenStep:
        # the chosen token may come on top of the k asked for; exact ties ranked by id, as argmax does
        ranked = sorted(dict(candidates).items(), key=lambda c: (-c[1], c[0]))[:top_k]
        piece = self.tokenizer.piece
        return TokenStep(token_id, piece(token_id), logprob, tuple(TopToken(i, piece(i), lp) for i, lp in ranked))

    def _get(self, client: Any, url: str) -> Any:
        """GET (``client``'s transport retries a refused connection); unreachable -> one-line GendiffError."""
        import httpx

        try:
            return client.get(url, headers=self._headers())
        except httpx.ConnectError as exc:
            raise GendiffError(f"engine {self.spec.label}: no server answers at {self.url} ({exc}); {HINT}") from None
        except httpx.HTTPError as exc:
            raise GendiffError(f"engine {self.spec.label}: {self.url}: {type(exc).__name__}: {exc}; {HINT}") from None

    def _retries(self) -> int:
        return int(str(self.option("retries")))

    def _timeout(self) -> Any:
        import httpx

        return httpx.Timeout(float(str(self.option("timeout"))), connect=5.0)


def _flavour_hint(flavour: Flavour) -> str:
    if flavour.name == "openai":
        return "vLLM answers with ids (return_tokens_as_token_ids); for SGLang use flavour=sglang, for llama.cpp flavour=llamacpp"
    if not flavour.tested:
        return f"this is the untested {flavour.name} flavour; please report what the server answered"
    return "see docs/served.md for what this flavour sends and expects"
