"""`syntfer gan train|edit|classifier|landmarks|compare-paths|compare-editors`: train a GANmut-style editor on a
labeled set; write an edited training set (any editor of the registry, `editors.load_editor`); train the 5-point
landmark predictor an inpainting editor aligns faces with; train the frozen classifier an editor's task loss reads (on crops framed as the editor
frames faces); compare the crop path with the full-resolution warp (sharpness, fidelity, identity); compare an
appearance editor with its warp alone and a baseline editor (issue #30, experimental)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from syntfer.core import labels as L
from syntfer.core.images import load_array
from syntfer.strategies.gan.editing import DlibDetector, make_restorer
from syntfer.strategies.gan.editors import load_editor
from syntfer.strategies.gan.networks import APPEARANCE_KINDS, EditorConfig, load_generator, load_official_generator
from syntfer.strategies.gan.sets import (detect_pool, draw_per_class, plan_recipe, render_edit_set,
                                        source_pool_from_boxes)
from syntfer.strategies.gan.training import TrainConfig, load_crops, select_per_class, train_editor
from syntfer.instruments.build import train_instrument
from syntfer.core.manifest import write_manifest
from syntfer.sources.readers import read_dataset
from syntfer.core.storage import save_image
from syntfer.engine.training import TrainConfig as ClassifierConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    t = sub.add_parser("train", help="train an editor (resumable) on a labeled dataset with face boxes")
    t.add_argument("--data", required=True, help="dataset root (e.g. outputs/world/affectnet)")
    t.add_argument("--format", default="affectnet", help="reader format (syntfer.sources.readers): affectnet, rafdb, folder")
    t.add_argument("--split", default="train")
    t.add_argument("--per-class-cap", type=int, default=250, help="first N images per class in file order (0 = all)")
    t.add_argument("--out", required=True)
    t.add_argument("--control", choices=("linear", "gaussian"), default="linear")
    t.add_argument("--size", type=int, default=48)
    t.add_argument("--conv-dim", type=int, default=16)
    t.add_argument("--repeat-num", type=int, default=3)
    t.add_argument("--d-conv-dim", type=int, default=32)
    t.add_argument("--d-repeat-num", type=int, default=3)
    t.add_argument("--steps", type=int, default=2400)
    t.add_argument("--n-critic", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--d-warmup-steps", type=int, default=150)
    t.add_argument("--lambda-cls", type=float, default=2.0)
    t.add_argument("--lambda-rec", type=float, default=5.0)
    t.add_argument("--aux-classifier", default="", help="frozen syntfer classifier checkpoint folder whose "
                   "cross-entropy on fakes vs target joins the generator loss (off when empty)")
    t.add_argument("--lambda-aux", type=float, default=0.0)
    t.add_argument("--aux-lowpass", action=argparse.BooleanOptionalAction, default=True,
                   help="the aux classifier sees 2x2-average-pooled fakes")
    t.add_argument("--aux-intensity", action="store_true",
                   help="linear control: the aux loss asks for intensity rho (rho x target + (1 - rho) x source)")
    t.add_argument("--init-from", default="", help="editor folder whose state.pt initialises G and D (fine-tuning)")
    t.add_argument("--lambda-tv", type=float, default=0.0, help="total-variation weight on the edit (fake - real)")
    t.add_argument("--residual", action=argparse.BooleanOptionalAction, default=True,
                   help="generator predicts a change added to its input (zero-initialised last conv)")
    t.add_argument("--flow-grid", type=int, default=0,
                   help="> 0: a flow editor that warps the face on this displacement grid (implies --no-residual)")
    t.add_argument("--flow-max", type=float, default=0.12, help="flow editor: largest displacement (crop fraction)")
    t.add_argument("--lambda-flow-tv", type=float, default=0.0, help="flow editor: total variation of the flow")
    t.add_argument("--lambda-fold", type=float, default=0.0, help="flow editor: penalty on folds (det J < margin)")
    t.add_argument("--fold-margin", type=float, default=0.3)
    t.add_argument("--lambda-id", type=float, default=0.0,
                   help="identity mapping: a real face edited toward its own expression should not change")
    t.add_argument("--appearance", default="none",
                   choices=("none", *APPEARANCE_KINDS),
                   help="flow editor: add a masked appearance residual after the warp (issue #30, experimental; "
                        "mouth_only / mouth_open / mouth_eyes / mouth_two_eyes: blends toward a mouth cavity's dark colour (mouth) or "
                        "teeth's and eye whites' light one (mouth; eyes) only; "
                        "syntfer.strategies.gan.networks.APPEARANCE_KINDS)")
    t.add_argument("--freeze-warp", action="store_true",
                   help="appearance editors: train the residual head only (the --init-from warp stays as it is)")
    t.add_argument("--appearance-max", type=float, default=0.5, help="the residual's bound ([-1, 1] image units)")
    t.add_argument("--lambda-app-l1", type=float, default=0.0, help="appearance residual: L1 (area) penalty")
    t.add_argument("--lambda-app-l2", type=float, default=0.0, help="appearance residual: L2 (energy) penalty")
    t.add_argument("--lambda-app-tv", type=float, default=0.0, help="appearance residual: total variation penalty")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--max-minutes", type=float, default=0.0, help="stop after this wall time (rerun to resume)")
    t.add_argument("--checkpoint-every", type=int, default=50, help="save the resume state every N steps")
    t.add_argument("--log-every", type=int, default=25, help="one log.csv row per N steps")

    c = sub.add_parser("classifier", help="train the frozen classifier of an editor's task loss on editor-framed "
                                          "face crops (an ensemble, calibrated; not the judge that measures it)")
    c.add_argument("--data", required=True, help="dataset root (e.g. outputs/world/affectnet)")
    c.add_argument("--format", default="affectnet")
    c.add_argument("--split", default="train")
    c.add_argument("--per-class-cap", type=int, default=0, help="first N images per class in file order (0 = all)")
    c.add_argument("--size", type=int, default=48, help="the editor's crop size")
    c.add_argument("--epochs", type=int, default=16)
    c.add_argument("--members", type=int, default=3)
    c.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", required=True, help="folder: crops/ (PNG + manifest.csv), train/, checkpoint/")
    e = sub.add_parser("edit", help="write an edited set (recipe × variant) with a manifest")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--editor", help="folder with generator.pt + editor.json (trained here)")
    src.add_argument("--official", help="official GANmut generator checkpoint (*-G.ckpt, StarGAN naming)")
    e.add_argument("--boxes", help="source pool: boxes.csv (path, face_x, face_y, face_width, face_height)")
    e.add_argument("--truth", help="truth.csv with identities for --boxes (world only)")
    e.add_argument("--images", help="source pool: a folder of real photos (dlib HOG detection)")
    e.add_argument("--recipe", choices=("10", "70", "RAF"), default="10")
    e.add_argument("--per-class", type=int, default=100)
    e.add_argument("--total", type=int, default=0)
    e.add_argument("--draw-per-class", type=int, default=0,
                   help="then a seeded draw of this many (face, class) pairs per class from the recipe's plan "
                        "(e.g. --recipe 70 --draw-per-class 300: 2,100 edits, as many as 300 truth-labelled faces)")
    e.add_argument("--landmarks", help="inpainting editors: the landmark predictor (a dlib .dat, `syntfer gan "
                   "landmarks`) that aligns each face in its box")
    e.add_argument("--intensity", choices=("learned", "interpolate"), default=None,
                   help="how the code's rho becomes strength (default: the editor's saved one; the pipeline: "
                        "params.yaml gan.intensity)")
    e.add_argument("--intensity-gamma", type=float, default=None)
    e.add_argument("--variant", choices=("F", "V"), default="V")
    e.add_argument("--restorer", choices=("none", "denoise", "codeformer", "paste"), default="denoise",
                   help="'paste' skips the domain-adaptation step entirely")
    e.add_argument("--codeformer-weights")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--out", required=True)
    e.add_argument("--resolution", choices=("full", "crop"), default="full",
                   help="flow editors: 'full' warps the source at its own resolution inside a face mask (no seam "
                        "repair); 'crop' pastes the editor-resolution crop back and repairs the seam")
    k = sub.add_parser("landmarks", help="train the 5-point landmark predictor (dlib) that aligns faces for an "
                       "inpainting editor, on an AffectNet-format folder's annotated landmarks; measured on its "
                       "validation split")
    k.add_argument("--affectnet", required=True, help="AffectNet-format folder (training.csv, validation.csv)")
    k.add_argument("--out", required=True, help="folder: predictor.dat + validation.json")
    k.add_argument("--check", action="append", default=[], metavar="NAME=TRUTH_CSV",
                   help="also measure on a world truth.csv (path, face box, landmarks) — e.g. the FFHQ stand-in")
    k.add_argument("--trees", type=int, default=200)
    k.add_argument("--threads", type=int, default=2)
    k.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("compare-paths", help="sharpness, judge fidelity and identity of the crop path against the "
                       "full-resolution warp (issue #30), on a source pool's first faces x 7 classes at F")
    m.add_argument("--editor", required=True, help="folder with generator.pt + editor.json")
    m.add_argument("--intensity", choices=("learned", "interpolate"), default=None)
    m.add_argument("--intensity-gamma", type=float, default=None)
    m.add_argument("--boxes", required=True, help="source pool: boxes.csv (e.g. outputs/world/ffhq/boxes.csv)")
    m.add_argument("--truth", help="truth.csv with identities for --boxes")
    m.add_argument("--judge", required=True, help="judge checkpoint folder (outputs/instruments/judge/checkpoint)")
    m.add_argument("--ceilings", help="the judge's ceiling.csv: adds F over the ceiling")
    m.add_argument("--reference-domain", default="ref_ffhq")
    m.add_argument("--identity", default="models/identity/world32", help="identity encoder folder")
    m.add_argument("--faces", type=int, default=200, help="first N faces of the pool are edited")
    m.add_argument("--restorer", choices=("none", "denoise"), default="denoise", help="the crop path's seam repair")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--out", required=True, help="folder for compare_paths.csv and compare_paths_per_class.csv")
    a = sub.add_parser("compare-editors", help="an editor against a baseline editor (an appearance editor also against "
                       "its warp alone): judge fidelity, identity, sharpness on a pool's first faces x 7 classes")
    a.add_argument("--editor", required=True, help="an editor folder (a warp editor, or an appearance editor: "
                   "EditorConfig.appearance)")
    a.add_argument("--baseline", help="another editor folder measured the same way (e.g. models/gan/world_flow48)")
    a.add_argument("--intensity", choices=("learned", "interpolate"), default=None)
    a.add_argument("--intensity-gamma", type=float, default=None)
    a.add_argument("--boxes", required=True, help="source pool: boxes.csv (e.g. outputs/world/ffhq/boxes.csv)")
    a.add_argument("--truth", help="truth.csv with identities for --boxes")
    a.add_argument("--judge", required=True, help="the independent judge's checkpoint folder (never the editor's "
                   "training classifier)")
    a.add_argument("--ceilings", help="the judge's ceiling.csv: adds F over the ceiling")
    a.add_argument("--reference-domain", default="ref_ffhq")
    a.add_argument("--aux", help="the editor's training classifier (checkpoint folder): its fidelity on the same "
                   "edits, read against the judge's")
    a.add_argument("--identity", default="models/identity/world32", help="identity encoder folder")
    a.add_argument("--faces", type=int, default=200, help="first N faces of the pool are edited")
    a.add_argument("--preview-faces", type=int, default=6, help="faces in preview.png (0: none)")
    a.add_argument("--rho-grid", default="", help="comma-separated ρ values (e.g. 0.25,0.5,0.75,1): fidelity along ρ "
                   "of every editor on the first --rho-faces faces x 6 classes (compare_editors_rho.csv)")
    a.add_argument("--rho-faces", type=int, default=100)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--out", required=True, help="folder for compare_editors.csv, compare_editors_per_class.csv, "
                   "compare_editors_rho.csv, preview.png")


def _train(args: argparse.Namespace) -> int:
    res = read_dataset(args.format, args.data, split=args.split, check="exists")
    frame = select_per_class(res.frame, args.per_class_cap)
    print(f"training on {len(frame)} images: {L.counts(frame['label'])}", file=sys.stderr)
    crops = load_crops(frame, args.size)
    labels = torch.tensor([L.CLASS_TO_INDEX[c] for c in frame["label"]])
    cfg = EditorConfig(control=args.control, image_size=args.size, conv_dim=args.conv_dim, repeat_num=args.repeat_num,
                       d_conv_dim=args.d_conv_dim, d_repeat_num=args.d_repeat_num,
                       residual=args.residual and not args.flow_grid, flow_grid=args.flow_grid,
                       flow_max=args.flow_max, appearance=args.appearance, appearance_max=args.appearance_max)
    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, n_critic=args.n_critic, g_lr=args.lr,
                       d_lr=args.lr, d_warmup_steps=args.d_warmup_steps, lambda_cls=args.lambda_cls,
                       lambda_rec=args.lambda_rec, seed=args.seed, threads=args.threads,
                       ckpt_every=args.checkpoint_every, log_every=args.log_every,
                       max_minutes=args.max_minutes, aux_classifier=args.aux_classifier,
                       lambda_aux=args.lambda_aux, aux_lowpass=args.aux_lowpass, lambda_tv=args.lambda_tv,
                       lambda_flow_tv=args.lambda_flow_tv, lambda_fold=args.lambda_fold,
                       fold_margin=args.fold_margin, aux_intensity=args.aux_intensity, init_from=args.init_from,
                       lambda_app_l1=args.lambda_app_l1, lambda_app_l2=args.lambda_app_l2,
                       lambda_app_tv=args.lambda_app_tv, freeze_warp=args.freeze_warp,
                       lambda_id=args.lambda_id)
    t0 = time.time()
    r = train_editor(crops, labels, args.out, cfg, tcfg)
    print(json.dumps({"step": r.step, "finished": r.finished, "seconds": round(time.time() - t0, 1)}))
    return 0 if r.finished or args.max_minutes else 1


def _classifier(args: argparse.Namespace) -> int:
    """Write the dataset's faces as the editor sees them (square face-box crops at --size) with a manifest, and
    train a calibrated classifier ensemble on them (`syntfer.instruments.build.train_instrument`) for `--aux-classifier`.
    The editor's task loss then reads faces framed as in training; the judge that measures the editor is another
    model (the pipeline's one judge, trained on the reference domains)."""
    torch.set_num_threads(args.threads)
    res = read_dataset(args.format, args.data, split=args.split, check="exists")
    frame = select_per_class(res.frame, args.per_class_cap)
    out = Path(args.out)
    crop_dir = out / "crops"
    files = [crop_dir / f"{i:06d}.png" for i in range(len(frame))]
    if not all(f.is_file() for f in files):
        crops = load_crops(frame, args.size)
        for f, c in zip(files, crops):
            save_image(f, Image.fromarray(c.permute(1, 2, 0).numpy()))
    manifest = pd.DataFrame({"path": [str(f.resolve()) for f in files], "label": frame["label"].to_numpy()})
    write_manifest(manifest, crop_dir / "manifest.csv")
    cfg = ClassifierConfig.from_recipe("fast", model="cnn_tiny", model_kwargs={"img_size": args.size, "head": "flatten"},
                                       epochs=args.epochs, label_smoothing=0.0, smoothing_weight=0.0, balanced=True,
                                       balance_method="logit_adjust", seed=args.seed, progress=False)
    summary = train_instrument(cfg, manifest, out, name="editor_classifier", members=args.members, mirror=args.mirror)
    print(json.dumps({k: summary[k] for k in ("temperature", "accuracy", "ece_after", "members", "mirror")}))
    return 0


def _edit(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    if args.official and (args.intensity or args.intensity_gamma is not None):
        raise SystemExit("syntfer gan edit: --intensity/--intensity-gamma apply to editors trained here (--editor)")
    gen = (load_editor(args.editor, args.intensity, args.intensity_gamma, args.landmarks) if args.editor
           else load_official_generator(args.official))
    if args.boxes:
        pool = source_pool_from_boxes(args.boxes, args.truth)
    elif args.images:
        files = sorted(str(p) for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        pool, skipped = detect_pool(files, DlibDetector())
        print(f"{len(skipped)} image(s) without a detected face were skipped", file=sys.stderr)
    else:
        raise SystemExit("syntfer gan edit: give --boxes (known face boxes) or --images (detect with dlib)")
    plan = plan_recipe(pool, args.recipe, per_class=args.per_class, total=args.total, seed=args.seed)
    if args.draw_per_class:
        plan = draw_per_class(plan, args.draw_per_class, args.seed)
    restorer = None if args.restorer == "paste" else make_restorer(args.restorer, args.codeformer_weights)
    m = render_edit_set(plan, gen, args.out, variant=args.variant, seed=args.seed, restorer=restorer,
                        batch_size=args.batch_size, resolution=args.resolution)
    print(json.dumps({"images": len(m), "counts": L.counts(m["label"]), "shortfall": plan.shortfall}))
    return 0


def _landmarks(args: argparse.Namespace) -> int:
    from syntfer.core.storage import write_json
    from syntfer.strategies.gan import landmarks as LM
    from syntfer.strategies.gan.training import face_frame

    def frames(boxes, images):
        return [face_frame(b, im.shape[1], im.shape[0]) for b, im in zip(boxes, images)]

    t0 = time.time()
    train = LM.read_affectnet_landmarks(args.affectnet, "train")
    images = [load_array(p, "RGB") for p in tqdm(train["path"], desc="faces", mininterval=2.0)]
    out = Path(args.out)
    LM.train_predictor(images, frames(train["box"], images), list(train["points"]), out / "predictor.dat",
                       trees=args.trees, threads=args.threads, seed=args.seed)
    predictor = LM.LandmarkPredictor(out / "predictor.dat")
    sets = {"affectnet_validation": LM.read_affectnet_landmarks(args.affectnet, "val")}
    for spec in args.check:
        name, _, csv = spec.partition("=")
        t = pd.read_csv(csv)
        sets[name] = pd.DataFrame({"path": [str((Path(csv).parent / p).resolve()) for p in t["path"]],
                                   "box": [tuple(b) for b in t[["face_x", "face_y", "face_width", "face_height"]].values],
                                   "points": [LM.five_points(c, f"{csv}, line {i + 2}")
                                              for i, c in enumerate(t["landmarks"])]})
    report = {"train_faces": len(train), "trees": args.trees, "seed": args.seed,
              "boxes": "the editor's square frame of each face box (training.face_frame)"}
    for name, d in sets.items():
        ims = [load_array(p, "RGB") for p in d["path"]]
        pred = np.stack([predictor(im, f) for im, f in zip(ims, frames(d["box"], ims))])
        e = LM.errors(pred, np.stack(d["points"]))
        report[name] = {"faces": len(d), "nme_mean": float(e["nme"].mean()), "px64_mean": float(e["px64"].mean()),
                        "px64_p90": float(e["px64"].quantile(0.9))}
    report["seconds"] = round(time.time() - t0, 1)
    write_json(out / "validation.json", report)
    print(json.dumps(report, indent=1))
    return 0


def _compare_paths(args: argparse.Namespace) -> int:
    from syntfer.instruments.identity_encoder import load_identity_encoder
    from syntfer.instruments.judge import Judge, judge_ceiling
    from syntfer.strategies.gan.editing import DegradeConfig
    from syntfer.strategies.gan.measurements import compare_edit_paths

    torch.set_num_threads(args.threads)
    gen = load_generator(args.editor, args.intensity, args.intensity_gamma)
    pool = source_pool_from_boxes(args.boxes, args.truth)
    rows = pool.iloc[:args.faces]
    reference = pool.iloc[len(pool) // 2:len(pool) // 2 + 4 * len(rows)]  # untouched faces (the pool's other half)
    if args.faces > len(pool) // 2:
        raise SystemExit(f"--faces {args.faces}: at most half the pool ({len(pool) // 2}); the other half is the "
                         "unedited reference")
    t0 = time.time()
    summary, per_class = compare_edit_paths(gen, rows, Judge.load(args.judge), load_identity_encoder(args.identity),
                                            args.seed, make_restorer(args.restorer), DegradeConfig(), reference)
    if args.ceilings:
        summary["F_over_ceiling"] = summary["fidelity_F"] / judge_ceiling(args.ceilings, args.reference_domain)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "compare_paths.csv", index=False)
    per_class.to_csv(out / "compare_paths_per_class.csv")
    with pd.option_context("display.width", 200):
        print(summary.round(3).to_string(index=False))
        print(per_class.round(3).to_string())
    print(f"{len(rows)} faces x 7 classes, {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


def _compare_editors(args: argparse.Namespace) -> int:
    from syntfer.instruments.identity_encoder import load_identity_encoder
    from syntfer.instruments.judge import Judge, judge_ceiling
    from syntfer.strategies.gan.measurements import appearance_preview, class_ceilings, compare_editors, rho_table

    torch.set_num_threads(args.threads)
    app = load_generator(args.editor, args.intensity, args.intensity_gamma)
    editors = {}
    if args.baseline:
        editors["baseline: " + Path(args.baseline).name] = load_generator(args.baseline, args.intensity,
                                                                          args.intensity_gamma)
    if app.cfg.appearance == "none":  # a warp editor: itself against the baseline
        editors[Path(args.editor).name] = app
    else:
        warp_only = load_generator(args.editor, args.intensity, args.intensity_gamma)
        warp_only.use_appearance = False
        editors[Path(args.editor).name + ": warp only"] = warp_only
        editors[Path(args.editor).name + ": warp + appearance"] = app
    pool = source_pool_from_boxes(args.boxes, args.truth)
    if args.faces > len(pool) // 2:
        raise SystemExit(f"--faces {args.faces}: at most half the pool ({len(pool) // 2}); the other half is the "
                         "unedited reference")
    rows = pool.iloc[:args.faces]
    reference = pool.iloc[len(pool) // 2:len(pool) // 2 + 4 * len(rows)]
    t0 = time.time()
    aux = Judge.load(args.aux) if args.aux else None
    judge = Judge.load(args.judge)
    summary, per_class = compare_editors(editors, rows, judge, load_identity_encoder(args.identity),
                                         args.seed, reference, aux=aux, aux_size=app.cfg.image_size)
    if args.ceilings:
        summary["F_over_ceiling"] = summary["fidelity_F"] / judge_ceiling(args.ceilings, args.reference_domain)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "compare_editors.csv", index=False)
    per_class.to_csv(out / "compare_editors_per_class.csv")
    if args.preview_faces:
        grid = appearance_preview(app, pool.iloc[:args.preview_faces], L.CLASSES, args.seed)
        save_image(out / "preview.png", Image.fromarray(grid))
    if args.rho_grid:
        try:
            grid_rho = [float(v) for v in args.rho_grid.split(",")]
        except ValueError:
            raise SystemExit(f"--rho-grid {args.rho_grid!r}: expected comma-separated numbers, e.g. 0.25,0.5,0.75,1")
        ceilings = class_ceilings(args.ceilings, args.reference_domain) if args.ceilings else None
        rho = rho_table(editors, pool.iloc[:args.rho_faces], judge, grid_rho, args.seed, ceilings)
        rho.to_csv(out / "compare_editors_rho.csv", index=False)
        print(rho.round(3).to_string(index=False))
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(summary.round(3).to_string(index=False))
        print(per_class.round(3).to_string())
    print(f"{len(rows)} faces x 7 classes x {len(editors)} editors, {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "edit": _edit, "classifier": _classifier, "landmarks": _landmarks,
            "compare-paths": _compare_paths, "compare-editors": _compare_editors}[args.action](args)
