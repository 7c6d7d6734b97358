"""``verify trained``: Section 4.2 on trained nets, and Galloway et al.'s batch-norm confounder."""

from __future__ import annotations

import argparse

from graphs.errors import InputError
from verify.cli import options as opt
from verify.settings import TRAINED_PROFILES as PROFILES

HELP = "train nets on upsampled real images; slopes of gradient norms and vulnerability against d (Sec. 4.2)"

EPILOG = """\
examples:
  verify trained --arch paper-net --data fashion-mnist --dims 28,56,112 --seeds 3       # quick profile, ~10 min on 2 cores
  verify trained --arch paper-net --data fashion-mnist --dims 28,56,112,224 --profile full --device auto   # for a GPU
  verify trained --arch resnet --data fashion-mnist --dims 28,56 --bn on --width 8 --epochs 3
  verify trained --arch paper-net --data digits --dims 16,32 --dilation-base 16 --channels 4 --seeds 2
  verify trained --arch paper-net --data fashion-mnist --dims 28,56,112 --lambdas 0.003,0.01,0.03 --methods pgd
  verify trained --model examples/fashion_cnn.py:fashion_cnn --data fashion-mnist --dims 28,56,112 --seeds 3
  verify trained --model examples/fashion_cnn.py:fashion_cnn --data digits --dims 8,16,32 --init keep

One net is trained per (size, arm, training run). The same images are upsampled by copying
pixels to every size in --dims (multiples of the native side: 28 for fashion-mnist, 8 for
digits), so only d changes. Arms: plain (cross-entropy), gp (Eq. 4 with q = 1: L + lam/2
||d_x L||_1) and pgd (Eq. 5 with an l_inf PGD attack of radius lam) at each lam of --lambdas,
all with the family's batch norm, and the confounder arm of Galloway et al. (2019): plain
training with batch norm off and --weight-decay (0 drops it). lam and eps are fractions of
the pixel range.

Every epoch (and at initialisation, epoch 0) the held-out images give: accuracy,
E||d_x L||_1, E||d_x L||_2, the vulnerability (the share of points whose predicted label an
l_inf PGD attack of --attack-eps flips; steps, step size and random start are printed in the
report) and the loss the attack gains. The slope of log E[Q] against log d is fitted with a
BCa bootstrap over training runs (run i of every size and arm starts from the same weights and
sees the same batches). Verdicts compare it with the paper's 1/2 and, for the confounder arm,
with Galloway et al.'s 0; the report says which claim the data support.

Your own module (--model FILE.py:FACTORY or package.module:FACTORY; the file is executed):
FACTORY(n) gets the image side n and must take images 1 x n x n (both data sets have one
channel; with --input-shape vector, FACTORY(d) gets d = n^2 and takes flattened images) and
return (batch, 10) logits; every size is built and checked before anything is trained.
--init he (default) draws run i's weights from the run's generator (He: conv and linear
weights N(0, 2/fan-in), biases 0, normalisation at the identity); --init keep starts from
the module's own initialisation (rebuilt per run with torch's RNG seeded from the run), or
from the checkpoint of --weights for every run. A module has no batch-norm switch: it keeps
the normalisation it builds (its batch norm trains on batch statistics and is measured on
its running ones), so no confounder arm is trained and only the paper's claim is tested.
The report records the file's and the checkpoint's SHA-256; checkpoints of an edited file
are not resumed.

Profiles: quick (default; 600 training and 80 held-out images, 3 epochs, lam 0.01,
paper-net with 8 channels, 3 runs: the README's example, about 10 minutes on 2 CPU cores) and
full (the whole training set, 1000 held-out images, 20 epochs, lam 0.003,0.01,0.03, the
family's own width, 5 runs: for a GPU, --device auto). Any flag overrides its profile value.

Checkpoints: every (size, arm, run, epoch) is saved under --checkpoint-dir (default
checkpoints/, one folder per setting key); run the same command again after an interruption
and it resumes from the last complete epoch. Files load with torch.load(path,
weights_only=True).

Data: fashion-mnist is read offline from the IDX files of Debian's dataset-fashion-mnist
(apt-get install dataset-fashion-mnist; /usr/share/datasets/fashion-mnist) or --data-dir;
digits ship with scikit-learn.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from verify.data import DATASETS

    parser = subparsers.add_parser(
        "trained",
        help=HELP,
        description=(
            "Train one net per input size, arm and run on real images upsampled by copying pixels; measure gradient "
            "norms and PGD vulnerability on held-out images every epoch; fit their slopes against d and weigh the "
            "paper's claim (slope 1/2 persists after training) against Galloway et al.'s (batch norm is the cause)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # --model: a user's module (verify.training.ModelFactory); no --mode, training sets the module's mode
    opt.add_arch_arguments(parser, model=True, model_input="1 x n x n", model_mode=False)
    parser.add_argument("--dims", required=True, help="comma-separated image sides, multiples of the data's side")
    g = parser.add_argument_group("data")
    g.add_argument("--data", default="fashion-mnist", choices=DATASETS, help="data set (default fashion-mnist)")
    g.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files (default Debian's)")
    g.add_argument("--train-size", type=int, default=None, help="training images, 0 = all (quick 600, full all)")
    g.add_argument("--test-size", type=int, default=None, help="held-out images, 0 = all (quick 80, full 1000)")
    g = parser.add_argument_group("training")
    g.add_argument("--profile", default="quick", choices=tuple(PROFILES), help="defaults below (default quick)")
    g.add_argument("--seeds", type=int, default=None, help="training runs per (size, arm), >= 2 (quick 3, full 5)")
    g.add_argument("--seed", type=int, default=0, help="seed of the run: run i uses the streams (seed, i) (default 0)")
    g.add_argument("--epochs", type=int, default=None, help="epochs per run (quick 3, full 20)")
    g.add_argument("--batch-size", type=int, default=None, help="training batch (quick 32, full 128)")
    g.add_argument("--optimizer", default=None, choices=("sgd", "adam"), help="adam (default) or sgd (momentum 0.9)")
    g.add_argument("--lr", type=float, default=None, help="learning rate (quick 0.003, full 0.001)")
    g.add_argument("--methods", default="gp,pgd", help="robust arms, comma-separated from gp, pgd (default both)")
    g.add_argument("--lambdas", default=None, help="lam of every robust arm (quick 0.01; full 0.003,0.01,0.03)")
    g.add_argument(
        "--weight-decay",
        type=float,
        default=5e-4,
        help="weight decay of the batch-norm-off arm (default 5e-4; 0 drops that arm)",
    )
    g.add_argument("--train-pgd-steps", type=int, default=None, help="PGD steps in training (quick 2, full 7)")
    g.add_argument(
        "--train-pgd-step-size", type=float, default=None, help="PGD step in training, fraction of lam (quick 0.6)"
    )
    g = parser.add_argument_group("attack measuring vulnerability")
    g.add_argument("--attack-eps", type=float, default=0.01, help="l_inf radius, fraction of the pixel range (0.01)")
    g.add_argument("--attack-steps", type=int, default=None, help="PGD steps (quick 4, full 10)")
    g.add_argument("--attack-step-size", type=float, default=None, help="PGD step, fraction of eps (quick 0.5)")
    g.add_argument("--eval-batch", type=int, default=128, help="held-out images per pass (default 128)")
    g = parser.add_argument_group("checkpoints")
    g.add_argument("--checkpoint-dir", default="checkpoints", help="checkpoint folder (default checkpoints)")
    g.add_argument("--no-checkpoints", action="store_true", help="neither save nor resume")
    opt.add_fit_arguments(parser, margin=0.1)
    opt.add_runtime_arguments(parser)
    opt.add_output_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _floats(text: str, flag: str) -> tuple[float, ...]:
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise InputError(f"{flag}: {part!r} is not a number; give e.g. {flag} 0.003,0.01") from None
    return tuple(out)


def build_config(args: argparse.Namespace):
    """The ``TrainedConfig`` of the command line (every input checked, nothing computed)."""
    from graphs.families import family
    from verify.checks.trained import default_arms
    from verify.data import NATIVE_SIDE
    from verify.training import SpecFactory

    profile = PROFILES[args.profile]

    def pick(name: str):
        value = getattr(args, name)
        return profile[name] if value is None else value

    if getattr(args, "mode", None) is not None:
        raise InputError(
            "--mode does not apply to verify trained: a module trains in train mode (batch statistics) and is measured "
            "in eval mode (running ones); drop it"
        )
    # both data sets are single-channel images (verify.data)
    model = opt.user_model(args, in_channels=1)
    if model is not None:
        return _model_config(args, model, pick)
    fam = family(args.arch)
    if getattr(args, "family_bn_mode", None) is not None:
        raise InputError(
            "--bn-mode does not apply to verify trained: nets train on batch statistics and are measured on running "
            "ones; drop it"
        )
    dims = opt.parse_dims(args.dims, at_least=2)
    options = opt.family_options(args)
    for name, value in profile["family"].get(args.arch, {}).items():
        options.setdefault(name, value)
    if args.arch == "paper-net":
        # dilation = upsampling factor, as the authors' n / 32 for CIFAR's 32 px; the last feature
        # map (n / 16) must be wider than that padding, so 8 px digits keep the authors' n / 32
        native = NATIVE_SIDE[args.data]
        options.setdefault("dilation_base", native if native > 16 else 32)
    classes = options.pop("num_classes", None)
    if classes is not None and classes != 10:
        raise InputError(f"--classes: {args.data} has 10 classes, the nets' outputs; drop --classes {classes}")
    bn = options.pop("bn", None)
    has_bn = any(o.name == "bn" for o in fam.options)
    # the builders' defaults: batch norm on for paper-net (the authors' net), off elsewhere
    bn_on = has_bn and (bn or ("on" if args.arch == "paper-net" else "off")) == "on"
    methods, lambdas = _robust_arms(args, pick)
    arms = default_arms(lambdas, methods, bn=bn_on, weight_decay=args.weight_decay if has_bn else 0.0)
    opt.check_fit_arguments(args)
    factory = SpecFactory(args.arch, tuple(sorted(options.items())), 1, 10)
    return _trained_config(args, factory, tuple(dims), arms, pick)


def _trained_config(args: argparse.Namespace, factory, dims: tuple[int, ...], arms, pick):
    """The ``TrainedConfig`` of a factory (a family's or a module's): the training, attack,
    data and fit settings, each from its flag or else from the profile (``pick``)."""
    from verify.checks.trained import TrainedConfig
    from verify.training import AttackSettings, TrainSettings

    return TrainedConfig(
        factory=factory,
        data=args.data,
        dims=dims,
        arms=arms,
        train=TrainSettings(
            epochs=pick("epochs"),
            batch_size=pick("batch_size"),
            lr=pick("lr"),
            optimizer=pick("optimizer"),
            pgd_steps=pick("train_pgd_steps"),
            pgd_step_size=pick("train_pgd_step_size"),
        ),
        attack=AttackSettings(args.attack_eps, pick("attack_steps"), pick("attack_step_size")),
        seeds=pick("seeds"),
        seed=args.seed,
        data_dir=args.data_dir,
        train_size=pick("train_size"),
        test_size=pick("test_size"),
        eval_batch=args.eval_batch,
        margin=args.margin,
        n_boot=args.n_boot,
        checkpoint_dir=None if args.no_checkpoints else args.checkpoint_dir,
    )


def _robust_arms(args: argparse.Namespace, pick) -> tuple[tuple[str, ...], tuple[float, ...]]:
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in ("gp", "pgd")]
    if bad:
        raise InputError(f"--methods: {', '.join(map(repr, bad))} not known; choose from gp, pgd")
    lambdas = _floats(pick("lambdas"), "--lambdas")
    if methods and not lambdas:
        raise InputError("--lambdas: give at least one value for the robust arms, e.g. --lambdas 0.01")
    if args.weight_decay < 0:
        raise InputError(f"--weight-decay: {args.weight_decay} is negative; give e.g. --weight-decay 5e-4")
    return methods, lambdas


def _model_config(args: argparse.Namespace, model, pick):
    """The ``TrainedConfig`` of ``--model``: the module keeps its own normalisation (no
    confounder arm); every size is built and checked, against the memory first, when the
    config is made."""
    from verify.checks.trained import default_arms
    from verify.training import ModelFactory

    dims = opt.parse_dims(args.dims, at_least=2)
    methods, lambdas = _robust_arms(args, pick)
    arms = default_arms(lambdas, methods, bn=True, weight_decay=0.0, own_norm=True)
    opt.check_fit_arguments(args)
    hint = opt.memory_hint(args, more=", a smaller --batch-size or --eval-batch")
    factory = ModelFactory(
        model,
        tuple(sorted(dims)),
        num_classes=10,
        data=args.data,
        preflight=lambda plan: opt.check_memory(args, plan, hint=hint),
    )
    return _trained_config(args, factory, tuple(dims), arms, pick)


def run(args: argparse.Namespace) -> int:
    from verify import memory
    from verify.checks.trained import check_trained
    from verify.data import load_data
    from verify.report.trained import render_trained
    from verify.report.writer import check_out_dir

    timer = opt.Timer()
    opt.check_runtime_arguments(args)
    config = build_config(args)
    if config.checkpoint_dir is not None:
        check_out_dir(config.checkpoint_dir, "--checkpoint-dir")
    # load (hence check) the data before anything is trained or written
    data = load_data(
        config.data,
        data_dir=config.data_dir,
        train_size=config.train_size,
        test_size=config.test_size,
        seed=config.seed,
    )
    spec_of = getattr(config.factory, "spec", None)
    if spec_of is not None:
        plan = memory.trained_plan(
            [spec_of(dim, True) for dim in config.dims],
            batch=config.train.batch_size,
            eval_batch=config.eval_batch,
            adversarial=any(a.method == "pgd" for a in config.arms) or config.attack.steps > 0,
            train_images=len(data.train_y),
            test_images=len(data.test_y),
            image_floats=data.channels * data.side**2,
            labels=[opt.size_label(args, dim) for dim in config.dims],
        )
        opt.check_memory(args, plan, hint=opt.memory_hint(args, more=", a smaller --batch-size or --eval-batch"))

    def check(cfg, *, rt=None, progress=False):
        return check_trained(cfg, rt=rt, progress=progress, data=data)

    return opt.execute(args, config, check, render_trained, timer)
