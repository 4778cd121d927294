"""An lm_eval language model over an ONNX decoder (a GenAI folder's or a plain model.onnx): the loglikelihood of each
continuation from one full-sequence forward of olivepress's OnnxDecoder, one request at a time (no padding goes
through the graph); generation with ONNX Runtime GenAI (greedy). Imported only with lm-evaluation-harness installed."""

import json
from typing import Any

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from olivepress.errors import OlivepressError
from olivepress.evaluation.onnx_forward import OnnxDecoder
from olivepress.models.handles import OnnxModel

DEFAULT_MAX_LENGTH = 2048  # Olive's, when neither the document nor genai_config.json says
DEFAULT_MAX_GEN_TOKENS = 256  # lm_eval's, when a task does not say


class OnnxLM(TemplateLM):
    def __init__(self, model: OnnxModel, execution_provider: str, max_length: int | None):
        from olivepress.models.loading import load_tokenizer

        super().__init__()
        self.decoder = OnnxDecoder(model, execution_provider)
        self.tokenizer = load_tokenizer(model.path)
        genai_config = model.path / "genai_config.json"
        search = json.loads(genai_config.read_text(encoding="utf-8")).get("search", {}) if genai_config.is_file() else {}
        self.model = model if genai_config.is_file() else None  # generation needs ONNX Runtime GenAI
        self.max_length = max_length or search.get("max_length") or DEFAULT_MAX_LENGTH

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        """What an empty context starts with: the tokenizer's BOS, else its EOS, as lm_eval's HFLM."""
        bos = self.tokenizer.bos_token_id
        return self.eot_token_id if bos is None else bos

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        # as lm_eval's HFLM encodes: the tokenizer's own special tokens unless told
        if add_special_tokens is None:
            return self.tokenizer.encode(string)
        return self.tokenizer.encode(string, add_special_tokens=add_special_tokens)

    def _loglikelihood_tokens(self, requests: list[tuple[tuple[str, str], list[int], list[int]]],
                              disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        """(sum of the continuation's token log-probabilities, whether each is the greedy choice) per request; the
        context is cut from the left to max_length tokens with the continuation."""
        answers = []
        for request, context, continuation in tqdm(requests, disable=disable_tqdm, desc="loglikelihood"):
            if len(continuation) > self.max_length:
                raise OlivepressError(f"max_length: a continuation of {len(continuation)} tokens is longer than "
                                      f"max_length {self.max_length}")
            ids = (context + continuation)[-(self.max_length + 1):][:-1]
            logits = self.decoder.logits(ids)[-len(continuation):]
            top = logits.max(axis=-1, keepdims=True)
            log_probs = logits - (top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)))
            picked = log_probs[np.arange(len(continuation)), continuation]
            answer = (float(picked.sum()), bool((log_probs.argmax(axis=-1) == continuation).all()))
            if request is not None:
                self.cache_hook.add_partial("loglikelihood", request, answer)
            answers.append(answer)
        return answers

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """The loglikelihood of each whole text, in disjoint windows of max_length tokens, as lm_eval's HFLM."""
        totals = []
        for (text,) in tqdm([request.args for request in requests], disable=disable_tqdm, desc="loglikelihood_rolling"):
            windows = [(None, *make_disjoint_window(window)) for window in get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.prefix_token_id, max_seq_len=self.max_length,
                context_len=1)]
            total = sum(log_prob for log_prob, _ in self._loglikelihood_tokens(windows, disable_tqdm=True))
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            totals.append(total)
        return totals

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy answers from ONNX Runtime GenAI, cut at the first of the task's stop strings."""
        from olivepress.evaluation.generation import GenAIGenerator

        assert self.model is not None  # the evaluator refuses generation on a plain ONNX model before it runs
        generator = GenAIGenerator(self.model)
        answers = []
        for request in tqdm(requests, disable=disable_tqdm, desc="generate_until"):
            context, settings = request.args
            if settings.get("do_sample") or settings.get("temperature", 0.0) > 0:
                raise OlivepressError(f"tasks: task '{request.task_name}' samples its answers (do_sample, temperature); "
                                      "an ONNX model answers greedily only")
            until = settings.get("until") or []
            stops = [until] if isinstance(until, str) else list(until)
            new_tokens = settings.get("max_gen_toks", DEFAULT_MAX_GEN_TOKENS)
            ids = self.tok_encode(context)[-max(self.max_length - new_tokens, 1):]
            text = generator.generate(ids, new_tokens).text
            for stop in stops:
                text = text.split(stop)[0]
            answers.append(text)
            self.cache_hook.add_partial("generate_until", request.args, text)
        return answers
