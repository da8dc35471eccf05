"""The paper's prompt grid for strategy (ii), prompt-driven diffusion synthesis (docs/method.md §4).

The grid is the full product gender x age x race x emotion x head pose x cue style x identity trait
(traits depend on (gender, age): 6 for children, 10 otherwise) = 57,960 prompts, 8,280 per emotion.
Each prompt has a stable id ``P00000``..``P57959``: its position in the nested product taken in the
order the lists below are written (gender, age, race, emotion, head pose, cue, trait). Changing any list
changes ids, so the lists are literals and a test pins a few ids to their text.

Also here: stratified subsets for small presets, the token-length check against a text encoder's limit
(77 for CLIP; an error or a visible shortening, never a silent truncation) and FineFace's action-unit
vectors per emotion.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from syntfer.core import labels as L
from syntfer.core.seeding import derive_seed
from syntfer.core.storage import atomic_path

log = logging.getLogger(__name__)

GENDERS: tuple[str, ...] = ("male", "female")
AGES: tuple[str, ...] = ("child", "young", "middle-aged", "adult", "old")
RACES: tuple[str, ...] = ("white", "black", "asian", "middle-eastern", "latino")
EMOTIONS: tuple[str, ...] = ("surprised", "fearful", "disgusted", "happy", "sad", "angry", "neutral")
HEAD_POSES: tuple[str, ...] = (
    "slightly turned to the left", "slightly turned to the right",
    "looking slightly to the left", "looking slightly to the right",
    "head tilted slightly to the left", "head tilted slightly to the right",
)
CUE_KEYS: tuple[str, ...] = ("au", "descriptive", "combined")

CUES: dict[str, dict[str, str]] = {
    "happy": {"au": "cheek raiser, lip corner puller, lips parted",
              "descriptive": "wide smile, raised cheeks",
              "combined": "smiling with parted lips and slightly raised cheeks"},
    "sad": {"au": "inner brow raiser, brow lowerer, lip corner depressor, chin raiser",
            "descriptive": "teary eyes, downturned lips",
            "combined": "subtly drooped mouth corners and raised inner brows"},
    "angry": {"au": "brow lowerer, lid tightener, chin raiser",
              "descriptive": "furrowed brows, clenched jaw",
              "combined": "intense brow tension, tightened eyes and chin pressure"},
    "disgusted": {"au": "brow lowerer, cheek raiser, lid tightener, nose wrinkler",
                  "descriptive": "wrinkled nose, upper lip raised",
                  "combined": "upper lip lifted with nose wrinkling and narrowed eyes"},
    "fearful": {"au": "inner brow raiser, outer brow raiser, lip stretcher, upper lid raiser, lips parted",
                "descriptive": "wide eyes, tense mouth",
                "combined": "eyes wide open, brows lifted, mouth slightly parted"},
    "surprised": {"au": "inner and outer brow raiser, upper lid raiser, lips parted, jaw drop",
                  "descriptive": "raised eyebrows, open mouth",
                  "combined": "eyes and mouth wide open, brows arched upward"},
    "neutral": {"au": "no specific muscle movements, relaxed face",
                "descriptive": "relaxed facial muscles, calm eyes",
                "combined": "soft gaze, symmetric facial muscles, no expression signs"},
}

TRAITS: dict[tuple[str, str], tuple[str, ...]] = {
    ("male", "child"): ("short straight hair", "messy hair", "side-parted hair", "buzz cut", "spiky hair",
                        "wearing a cap"),
    ("female", "child"): ("braided hair", "short bob cut", "ponytail", "shoulder-length hair", "curly hair",
                          "with a headband"),
    ("male", "young"): ("buzz cut", "short spiky hair", "clean-shaven", "short beard", "goatee", "wearing a hoodie",
                        "with earrings", "undercut hairstyle", "faded haircut", "with a nose ring"),
    ("female", "young"): ("long straight hair", "ponytail", "with earrings", "wearing glasses", "fringe hairstyle",
                          "with freckles", "shoulder-length waves", "colored highlights", "braided ponytail",
                          "with a headscarf"),
    ("male", "adult"): ("clean-shaven", "short beard", "moustache", "buzz cut", "wearing glasses",
                        "medium-length hair", "slight stubble", "side-parted haircut", "with a crew cut",
                        "with a five o'clock shadow"),
    ("female", "adult"): ("with bangs", "long curly hair", "with earrings", "wearing glasses", "medium bob haircut",
                          "with layered hairstyle", "curly shoulder-length hair", "with nose ring", "natural waves",
                          "wearing lipstick"),
    ("male", "middle-aged"): ("moustache and beard", "receding hairline", "wearing glasses", "clean-shaven",
                              "short grey hair", "salt-and-pepper beard", "thinning hair", "wearing a dress shirt",
                              "comb-over hairstyle", "with forehead wrinkles"),
    ("female", "middle-aged"): ("shoulder-length hair", "wearing a scarf", "short curls", "with earrings",
                                "grey streaks in hair", "tied-back hair", "glasses and lipstick",
                                "loose bun hairstyle", "wavy layered hair", "light makeup"),
    ("male", "old"): ("bald with white beard", "grey hair with glasses", "wrinkled face", "receding hairline",
                      "clean-shaven elderly", "deep forehead lines", "white moustache", "aged skin",
                      "sunspots on cheeks", "wearing a sweater"),
    ("female", "old"): ("grey bun hairstyle", "short grey curls", "with earrings", "wrinkled face",
                        "wearing a scarf", "deep smile lines", "wearing large glasses", "white wavy hair",
                        "wearing a cardigan", "thin lips and age spots"),
}

TEMPLATE = ("A close-up portrait clearly showing an intense and highly expressive {emotion} facial expression "
            "({cue}). The subject is a {age} {gender} with {race} ethnicity. {head_pose}, {identity_trait}, "
            "captured in a real-world environment.")

GRID_SIZE = 57_960
COLUMNS: tuple[str, ...] = ("id", "prompt", "gender", "age", "race", "emotion", "label", "head_pose", "cue_key",
                            "identity_trait")

# FineFace (SD 2.1-base + AU adapter): the 12 action units its encoder takes, in its input order,
# and docs/method.md §4's intensities per prompted emotion (0..5 FACS-like scale; neutral = all zero).
FINEFACE_AUS: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU15", "AU17", "AU20",
                                 "AU25", "AU26")
FINEFACE_AU_TABLE: dict[str, dict[str, float]] = {
    "happy": {"AU6": 2.5, "AU12": 4.0, "AU25": 1.5},
    "sad": {"AU1": 2.5, "AU4": 2.0, "AU15": 3.0, "AU17": 1.5},
    "angry": {"AU4": 3.5, "AU5": 0.8, "AU17": 1.2, "AU25": 0.3},
    "disgusted": {"AU9": 3.5, "AU4": 1.2, "AU17": 0.8, "AU25": 0.8},
    "fearful": {"AU1": 1.8, "AU2": 1.6, "AU5": 2.5, "AU20": 1.8, "AU25": 1.2, "AU26": 1.2},
    "surprised": {"AU1": 2.5, "AU2": 2.5, "AU5": 2.8, "AU25": 1.8, "AU26": 2.5},
    "neutral": {},
}
FINEFACE_GUIDANCE = 7.5

CLIP_MAX_LENGTH = 77
# CLIP's pre-tokenizer split (ftfy/regex details aside): every piece becomes >= 1 BPE token.
_CLIP_PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-zA-Z]+|[0-9]|[^\sa-zA-Z0-9]+", re.IGNORECASE)
# Clauses that may be removed, in this order, when a prompt must be shortened (least informative first).
SHORTENING_STEPS: tuple[tuple[str, str], ...] = (
    (", captured in a real-world environment.", "."),
    ("A close-up portrait clearly showing an intense and highly expressive ", "A close-up portrait of an intense "),
)


class PromptError(ValueError):
    """A prompt that cannot be used as asked (too long, unknown attribute, …)."""


def build_prompt(*, gender: str, age: str, race: str, emotion: str, head_pose: str, cue_key: str,
                 identity_trait: str) -> str:
    """The paper's template filled in; the head pose starts a sentence, so it is capitalised."""
    if emotion not in CUES:
        raise PromptError(f"emotion {emotion!r} not in the grid; expected one of {list(CUES)}")
    if cue_key not in CUE_KEYS:
        raise PromptError(f"cue_key {cue_key!r}; expected one of {list(CUE_KEYS)}")
    return TEMPLATE.format(emotion=emotion, cue=CUES[emotion][cue_key], age=age, gender=gender, race=race,
                           head_pose=head_pose[:1].upper() + head_pose[1:], identity_trait=identity_trait)


def prompt_grid() -> pd.DataFrame:
    """The full grid: 57,960 rows with columns `COLUMNS` (label = canonical class of `emotion`)."""
    rows = []
    for gender, age in itertools.product(GENDERS, AGES):
        traits = TRAITS[(gender, age)]
        for race, emotion, pose, cue, trait in itertools.product(RACES, EMOTIONS, HEAD_POSES, CUE_KEYS, traits):
            rows.append((gender, age, race, emotion, pose, cue, trait))
    df = pd.DataFrame(rows, columns=["gender", "age", "race", "emotion", "head_pose", "cue_key", "identity_trait"])
    df.insert(0, "id", [f"P{i:05d}" for i in range(len(df))])
    df.insert(1, "prompt", [build_prompt(**r) for r in df.drop(columns="id").to_dict("records")])
    df.insert(6, "label", [L.canonical(e) for e in df["emotion"]])
    if len(df) != GRID_SIZE:
        raise AssertionError(f"prompt grid has {len(df)} rows; docs/method.md §4 says {GRID_SIZE}")
    return df[list(COLUMNS)]


def _balanced_order(codes: np.ndarray, sizes: Sequence[int], depth: np.ndarray, n: int,
                    rng: np.random.Generator, attempts: int = 64) -> list[tuple[int, int]]:
    """n (combination, round) picks whose every prefix is close to balanced on each stratum's marginal.

    `codes` (K, S): level codes of the K combinations; `depth` (K,): rows each combination has. Rounds visit
    every combination with rows left once; inside a round the next pick is a combination whose levels are
    all at their stratum's current minimum if one is left (else the fewest over), then the least drawn
    levels overall, then a seeded random tie-break. Greedy can paint itself into a corner, so up to
    `attempts` tie-break orders are tried and the first whose final marginals differ by at most one (else
    the most balanced) wins.
    """
    best, best_spread = None, None
    for _ in range(attempts):
        tie = rng.random(len(codes))
        used = [np.zeros(k, np.int64) for k in sizes]
        picks: list[tuple[int, int]] = []
        rnd = 0
        while len(picks) < n:
            avail = depth > rnd
            while avail.any() and len(picks) < n:
                counts = np.stack([used[i][codes[:, i]] for i in range(len(sizes))], 1)
                lows = np.array([u.min() for u in used])
                over = (counts > lows).sum(1)
                key = np.lexsort((tie, counts.sum(1), over, ~avail))  # last key sorts first
                j = int(key[0])
                avail[j] = False
                picks.append((j, rnd))
                for i in range(len(sizes)):
                    used[i][codes[j, i]] += 1
            rnd += 1
        spread = max(int(u.max() - u.min()) for u in used)
        if best_spread is None or spread < best_spread:
            best, best_spread = picks, spread
        if spread <= 1:
            break
    return best


def stratified_subset(grid: pd.DataFrame, n_per_emotion: int, seed: int = 0,
                      strata: Sequence[str] = ("gender", "race", "age")) -> pd.DataFrame:
    """`n_per_emotion` prompts per emotion, balanced over every stratum at once, random over the other
    columns; deterministic in `seed`.

    Within an emotion, rows are drawn in rounds of one (random) row per stratum combination, in the order of
    `_balanced_order`, so each stratum's levels differ by at most one whenever such a draw exists (with 40
    per emotion over 2 genders x 5 races x 5 ages: 20/20, 8 per race, 8 per age — a mixed-radix order had
    balanced only its fastest stratum and left 'young' out entirely).
    """
    counts = grid.groupby("emotion").size()
    if n_per_emotion < 1 or n_per_emotion > counts.min():
        raise PromptError(f"n_per_emotion={n_per_emotion}; expected 1..{int(counts.min())}")
    missing = [s for s in strata if s not in grid.columns]
    if missing:
        raise PromptError(f"strata {missing} are not grid columns {list(grid.columns)}")
    rng = np.random.default_rng(derive_seed(seed, "prompts.stratified_subset"))
    df = grid.copy()
    df["_r"] = rng.random(len(df))  # random order of rows within each combination
    chosen: list[int] = []
    for _, g in df.groupby("emotion", sort=False):
        grouped = g.groupby(list(strata), sort=True)
        combos = [sub.sort_values("_r").index.to_numpy() for _, sub in grouped]
        keys = grouped.size().index
        keys = keys if isinstance(keys, pd.MultiIndex) else pd.MultiIndex.from_arrays([keys])
        codes = np.stack([keys.codes[i] for i in range(len(strata))], 1)
        sizes = [len(lv) for lv in keys.levels]
        depth = np.array([len(c) for c in combos])
        chosen += [int(combos[j][r]) for j, r in _balanced_order(codes, sizes, depth, n_per_emotion, rng)]
    out = df.loc[chosen].drop(columns=["_r"])
    order = {e: i for i, e in enumerate(EMOTIONS)}
    out = out.sort_values(["emotion", "id"], key=lambda s: s.map(order) if s.name == "emotion" else s)
    return out.reset_index(drop=True)


def clip_piece_count(prompt: str) -> int:
    """Lower bound on CLIP BPE tokens incl. start/end tokens (each pre-tokenizer piece is >= 1 token).

    Used only when no real tokenizer is given; the real check needs the checkpoint's tokenizer.
    """
    return len(_CLIP_PIECES.findall(prompt.lower())) + 2


def token_count(prompt: str, tokenizer=None) -> int:
    """Tokens the text encoder sees (special tokens included). `tokenizer`: an HF tokenizer or None."""
    if tokenizer is None:
        return clip_piece_count(prompt)
    return len(tokenizer(prompt, truncation=False, add_special_tokens=True)["input_ids"])


def check_prompt_lengths(prompts: pd.DataFrame, tokenizer=None, max_length: int = CLIP_MAX_LENGTH,
                         on_overflow: str = "error") -> pd.DataFrame:
    """Check every prompt against the encoder's `max_length` (77 for CLIP).

    Adds `n_tokens` and `shortened` columns (and keeps the original text in `prompt_original` when
    shortened). ``on_overflow="error"`` raises PromptError naming the first offending id and its count;
    ``"shorten"`` removes `SHORTENING_STEPS` clauses in order until the prompt fits, logs a warning with
    the number of prompts changed, and raises if a prompt still does not fit. Nothing is ever truncated.
    Without a tokenizer the count is a lower bound (`clip_piece_count`), noted in the log.
    """
    if on_overflow not in ("error", "shorten"):
        raise PromptError(f"on_overflow={on_overflow!r}; expected 'error' or 'shorten'")
    if tokenizer is None:
        log.info("token check without a tokenizer: counts are CLIP pre-tokenizer pieces (a lower bound)")
    out = prompts.copy()
    texts = out["prompt"].tolist()
    counts = [token_count(t, tokenizer) for t in texts]
    shortened = [False] * len(texts)
    originals = list(texts)
    for i, n in enumerate(counts):
        if n <= max_length:
            continue
        ident = out["id"].iloc[i] if "id" in out.columns else i
        if on_overflow == "error":
            raise PromptError(f"prompt {ident} has {n} tokens > {max_length} (text encoder limit): {texts[i]!r}")
        t = texts[i]
        for old, new in SHORTENING_STEPS:
            t = t.replace(old, new)
            n = token_count(t, tokenizer)
            if n <= max_length:
                break
        if n > max_length:
            raise PromptError(f"prompt {ident} still has {n} tokens > {max_length} after shortening: {t!r}")
        texts[i], counts[i], shortened[i] = t, n, True
    out["prompt"] = texts
    out["n_tokens"] = counts
    out["shortened"] = shortened
    if any(shortened):
        out["prompt_original"] = originals
        log.warning("%d of %d prompts were shortened to fit %d tokens (see column 'shortened')",
                    sum(shortened), len(out), max_length)
    return out


def au_vector(emotion: str) -> np.ndarray:
    """FineFace's 12-AU intensity vector (order `FINEFACE_AUS`) for a grid emotion word or a class name."""
    word = emotion if emotion in FINEFACE_AU_TABLE else _EMOTION_WORD.get(L.canonical(emotion))
    if word is None:
        raise PromptError(f"no FineFace AU entry for {emotion!r}")
    table = FINEFACE_AU_TABLE[word]
    return np.array([table.get(au, 0.0) for au in FINEFACE_AUS], dtype=np.float32)


_EMOTION_WORD: dict[str, str] = {L.canonical(e): e for e in EMOTIONS}


def au_matrix(emotions: Sequence[str]) -> np.ndarray:
    """Stacked `au_vector`s, shape (N, 12)."""
    return np.stack([au_vector(e) for e in emotions]) if len(emotions) else np.zeros((0, 12), np.float32)


def write_grid(path: str | Path, grid: pd.DataFrame | None = None) -> Path:
    """Write the grid (default: the full one) as CSV atomically."""
    grid = prompt_grid() if grid is None else grid
    path = Path(path)
    with atomic_path(path) as tmp:
        grid.to_csv(tmp, index=False)
    return path


def read_grid(path: str | Path) -> pd.DataFrame:
    """Read a grid CSV written by `write_grid`, checking the columns."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise PromptError(f"{path}: missing prompt column(s) {missing}")
    return df


# --- CLI: `syntfer prompts --out FILE.csv` ---------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="CSV file to write (one row per prompt)")
    parser.add_argument("--per-emotion", type=int, default=None,
                        help="write a stratified subset of this many prompts per emotion instead of the full grid")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stratified subset")
    parser.add_argument("--max-tokens", type=int, default=CLIP_MAX_LENGTH)
    parser.add_argument("--on-overflow", choices=("error", "shorten"), default="error")


def run(args: argparse.Namespace) -> int:
    grid = prompt_grid()
    if args.per_emotion is not None:
        grid = stratified_subset(grid, args.per_emotion, seed=args.seed)
    grid = check_prompt_lengths(grid, max_length=args.max_tokens, on_overflow=args.on_overflow)
    write_grid(args.out, grid)
    print(f"wrote {len(grid)} prompts to {args.out} (max {grid['n_tokens'].max()} tokens, "
          f"{int(grid['shortened'].sum())} shortened)")
    return 0
