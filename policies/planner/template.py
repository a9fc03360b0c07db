"""The four-module prompt of the `mllm` planner and the parser of its answer.

The prompt (DEFAULT_TEMPLATE) gives the model a text summary of the video ({frames}, one line per
sampled frame; see frame_text.py) and asks for four lines headed `Semantic:`, `Temporal:`,
`Aesthetic:` and `Spatial:`; it ends with `Semantic:` so the generation starts inside the first
module. `parse_modules` reads the modules back from prompt tail + generation: each module is the
text after its header up to the next header (any order, any case); a missing module is empty.
"""
from __future__ import annotations

import re

from common.types import COT_MODULES

DEFAULT_TEMPLATE = (
    "You plan the soundtrack of a silent video. Visual summary, one line per sampled frame "
    "(time, where bright objects are, which ones flash):\n"
    "{frames}\n"
    "Write the sound plan as four lines:\n"
    "Semantic: which objects make sounds and what they sound like.\n"
    "Temporal: how many sound events there are and at which times in seconds.\n"
    "Aesthetic: the character and quality of the sound.\n"
    "Spatial: where each sound source is (left, centre, right) and how it moves.\n\n"
    "Semantic:"
)
"""Built-in prompt; `{frames}` is replaced by the per-frame visual summary."""

_HEADER = re.compile(r"(?im)^\s*(" + "|".join(COT_MODULES) + r")\s*:")
_INLINE_HEADER = re.compile(r"(?i)\b(" + "|".join(COT_MODULES) + r")\s*:")


def render_prompt(template: str, frames_text: str) -> str:
    """The prompt for one video; ValueError when the template has no `{frames}` placeholder."""
    template = template or DEFAULT_TEMPLATE
    if "{frames}" not in template:
        raise ValueError("planner.prompt_template must contain the placeholder {frames}")
    return template.replace("{frames}", frames_text)


def open_module(template: str) -> str | None:
    """The module whose header ends the template (the generation continues it), if any."""
    m = re.search(r"(?i)(" + "|".join(COT_MODULES) + r")\s*:\s*$", template or DEFAULT_TEMPLATE)
    return m.group(1).lower() if m else None


def parse_modules(generated: str, first_module: str | None = "semantic") -> dict[str, str]:
    """The four modules from a model's answer.

    first_module: the module the answer starts in without a header (the template's last header);
    None when every module must carry its own header. Headers are found at line starts first; when
    the answer has fewer than two line-start headers, inline `Temporal:`-style headers count too.
    """
    text = f"{first_module}: {generated}" if first_module else generated
    headers = list(_HEADER.finditer(text))
    if len(headers) < 2:
        headers = list(_INLINE_HEADER.finditer(text))
    plan = {m: "" for m in COT_MODULES}
    for k, h in enumerate(headers):
        name = h.group(1).lower()
        end = headers[k + 1].start() if k + 1 < len(headers) else len(text)
        body = " ".join(text[h.end() : end].split())
        if body and not plan[name]:  # the first occurrence of a module wins
            plan[name] = body
    return plan
