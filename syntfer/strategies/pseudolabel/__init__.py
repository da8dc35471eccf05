"""Strategy (i): pseudo-label unlabeled faces with a teacher, keep the confident top-K per class (docs/method.md §3).

Pipeline (`pseudolabel`, in `pipeline`):
1. `scoring`: batched teacher inference over a manifest's images (`score_images`), written as resumable CSV
   shards keyed by the teacher and the image list;
2. `selection`: keep max p > ``threshold`` (paper: 0.3), label = argmax, the top ``per_class`` (paper: 10,000)
   per class by p, ties by path (`select`);
3. `dataset`: ``OUT/images/<label>/``, ``OUT/manifest.csv`` and ``OUT/counts.json`` (`write_selection`);
   the pipeline adds ``OUT/scores.csv`` (every image's probabilities).

Notebook helpers: `analysis` (`survivors` per class at several thresholds, `precision_recall` and `reliability`
against hidden truth, `world_metrics`) and `figures` (seaborn plots). `cli`: ``syntfer pseudolabel``.
"""
from syntfer.strategies.pseudolabel.analysis import attach_truth, precision_recall, reliability, survivors, world_metrics
from syntfer.strategies.pseudolabel.dataset import LINK_MODES, write_selection
from syntfer.strategies.pseudolabel.figures import (plot_precision_recall, plot_reliability, plot_sample_grid,
                                                    plot_score_distributions, plot_survivors)
from syntfer.strategies.pseudolabel.pipeline import PseudolabelResult, pseudolabel, source_name
from syntfer.strategies.pseudolabel.scoring import (PROB_COLUMNS, SCORE_FORMAT, PseudolabelError, ScoreReport,
                                                    images_fingerprint, read_scores, score_images)
from syntfer.strategies.pseudolabel.selection import Selection, check_rule, select, top_label
from syntfer.core.strategy import Strategy

STRATEGY = Strategy("pseudolabel_", "pseudo-labeling", "synthetic",
                    "strategy (i): a teacher labels an unlabeled collection", order=1,
                    commands=(("pseudolabel", "syntfer.strategies.pseudolabel.cli",
                               "pseudo-label unlabeled images with a teacher (strategy i)"),),
                    words=(("emonet_face", "EmoNet-Face"),), sets_key="pseudolabel.sources")
"""How the study names this strategy's sets (`syntfer.core.strategy`): ``pseudolabel_<variant>``."""

__all__ = [
    "LINK_MODES", "PROB_COLUMNS", "SCORE_FORMAT", "STRATEGY", "PseudolabelError", "PseudolabelResult",
    "ScoreReport", "Selection", "attach_truth", "check_rule", "images_fingerprint", "plot_precision_recall",
    "plot_reliability", "plot_sample_grid", "plot_score_distributions", "plot_survivors", "precision_recall", "pseudolabel",
    "read_scores", "reliability", "score_images", "select", "source_name", "survivors", "top_label",
    "world_metrics", "write_selection",
]
