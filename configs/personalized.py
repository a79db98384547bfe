r"""Chaudhuri et al., Personalized Face Modeling for Improved Face Reconstruction and Motion
Retargeting (ECCV 2020), from its supplement (Table 1, the loss weights, the video procedure).

    python train/main.py --config=configs/personalized.py:smoke --workdir=runs/pfm_smoke
    python train/main.py --config=configs/personalized.py:cpu --workdir=runs/pfm_full
    python train/main.py --config=configs/personalized.py:cpu,ablation=generic \
      --workdir=runs/pfm_generic
    python train/main.py --config=configs/personalized.py:cpu,ablation=no_dynamic_albedo \
      --workdir=runs/pfm_no_dynamic_albedo
    python -m jaxface.methods.personalized.video --input VIDEO_OR_FRAMES --workdir runs/pfm_full \
      --output out/

`smoke` trains both stages for a few steps on 32 x 32 frames and evaluates
in a few minutes on the 2-core CPU, mostly compiling; its numbers mean
nothing. `cpu` is the documented CPU budget of docs/results/personalized.md.

Variants (`file.py:variant[,key=value...]`):
  default   the paper's settings (224 x 224 frames, Table 1's widths) on ICT-FaceKit when
            $JAXFACE_DATA has it, else on the procedural model.
  paper     the same, but requires ICT-FaceKit.
  cpu       procedural model, 64 x 64 frames, narrow networks (about an hour per stage at
            most on the 2-core CPU).
  smoke     procedural model, tiny (used by the tests).
Arguments: stage=all|joint|finetune (default all),
ablation=none|generic|no_dynamic_albedo|free_corrections (or the ablation alone as the variant),
model=procedural|ict|PATH.

Ablations:
  generic            the baseline: the generic blendshape rig (no blendshape corrections, no
                     dynamic albedo) tracked by the same tracking network; the user's neutral
                     shape and static albedo are still personal.
  no_dynamic_albedo  personal blendshapes, static albedo only.
  free_corrections   blendshape corrections allowed anywhere on the face (not only where their
                     generic blendshape moves): the first design, which the results page
                     shows absorbing identity into the expressions.

Choices the supplement leaves open (fields below are documented beside them):
- The personal model adds the morphable model's identity coefficients,
  from a linear head on the pooled encoder feature, to the UV corrections:
  the coefficients carry the coarse identity, the corrections what the
  model's modes cannot express (the supplement names the neutral-shape
  correction but not its reference; a 3DMM reference is what DECA and the
  paper's other baselines use).
- The loss terms' meanings and units (`jaxface.methods.personalized.losses`
  states each and why): photometric L2,1, landmarks in 224-px pixels,
  corrections in cm.
- The tracking network, not specified: ResNet-18 with GroupNorm, regressing
  pose, weights and SH; the camera has the data's mean field of view (16 deg).
- The modeling network's batch norms are the supplement's; its heads are
  linear (they output signed corrections).
- A blendshape's correction is confined to where the generic blendshape
  moves (`correction_support`); unconfined corrections let the personal
  blendshapes carry identity (measured: docs/results/personalized.md).
- Training: both stages use Adam (3e-4 joint, 1e-4 fine-tuning); batch of B
  users x K = 4 frames (the supplement's 4-image timing).
- Data: every identity has its own rig (`jaxface.data.personal`) at
  `data.personal_strength` = 1; test users are never seen in training.
  Expressions reach full weight (`data.expression_amplitude` = 1): at 64 px
  a pixel is about 4 mm of face, and weaker expressions move most of the
  face by less than a pixel. `cpu` trains on 1,200 users: with 300 the
  tracking network fitted its training frames (1.2 px landmark error)
  and not held-out ones (2.3 px, 14 deg rotation error).
"""

from __future__ import annotations

import ml_collections

from jaxface.errors import ConfigError
from jaxface.methods.personalized.losses import WEIGHTS
from jaxface.morphable.loaders import ict_available
from jaxface.training import loop_defaults, parse_arg, warm_start_source

VARIANTS = ("default", "paper", "cpu", "smoke")
ABLATIONS = ("none", "generic", "no_dynamic_albedo", "free_corrections")
STAGES = ("joint", "finetune")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = parse_arg(arg, variant="default", ablation="none", stage="all", model="")
  variant, ablation, stage = str(args.variant), str(args.ablation), str(args.stage)
  if variant in ABLATIONS:
    variant, ablation = "default", variant
  if variant not in VARIANTS:
    raise ConfigError(f"unknown variant {variant!r}; known: {VARIANTS + ABLATIONS[1:]}")
  if ablation not in ABLATIONS:
    raise ConfigError(f"unknown ablation {ablation!r}; known: {ABLATIONS}")
  if stage not in ("all", *STAGES):
    raise ConfigError(f"unknown stage {stage!r}; known: {('all', *STAGES)}")

  config = loop_defaults()
  config.method = "personalized"
  config.variant = variant
  config.ablation = ablation  # a label; the switches it sets are the fields below
  config.batch_size = 8  # users per step, each with frames_per_user frames

  # jaxface.data.synthetic.sequence_example: one person per sequence, with their own rig.
  config.data = data = ml_collections.ConfigDict()
  data.model = "ict" if ict_available() else "procedural"
  data.image_size = 224  # the paper's crops
  data.num_frames = 16  # frames per sequence
  data.num_train = 2000  # training users
  data.num_eval = 64  # held-out users
  data.personal_strength = 1.0  # the rig's identity-specific share (0: every person is generic)
  data.expression_amplitude = 1.0  # peak blendshape weight of a sequence's expressions
  data.seed = 0
  data.data_dir = ""  # "": <$JAXFACE_CACHE or ~/.cache/jaxface>/datasets

  config.personalized = pc = ml_collections.ConfigDict()
  pc.stage = stage
  pc.steps_joint = 40_000
  pc.steps_finetune = 10_000
  pc.learning_rate = 3e-4  # the joint stage's Adam
  pc.finetune_learning_rate = 1e-4
  pc.frames_per_user = 4  # K frames the modeling network pools in training
  pc.draws_per_user = 16  # training examples per user per epoch (different K-frame draws)
  pc.eval_frames_per_user = 4  # frames a held-out user's model is built from
  pc.num_identity = 0  # identity modes of the model used (0: all)
  pc.blendshape_corrections = ablation != "generic"
  pc.dynamic_albedo = ablation in ("none", "free_corrections")
  # Where a blendshape correction dB_k may act: "blendshape" (scaled by |B_k| / max |B_k|, only
  # where the generic blendshape moves, as deformation transfer never moves what the template's
  # blendshape leaves still) or "free" (anywhere; see docs/results/personalized.md).
  pc.correction_support = "free" if ablation == "free_corrections" else "blendshape"
  pc.encoder_widths = (64, 128, 128, 256, 256, 512, 512)  # Table 1a
  pc.decoder_widths = (512, 256, 128, 64)  # Table 1b
  pc.shape_scale = 0.1  # cm per unit of the shape heads' output
  pc.albedo_scale = 0.1  # RGB per unit of the albedo heads' output
  pc.tracking_width = 1.0  # ResNet-18 width multiplier
  pc.nominal_distance = 4.4  # camera distance in face heights (the data's: 4-4.8)
  pc.weights = ml_collections.ConfigDict(dict(WEIGHTS))  # the supplement's lambdas
  pc.eval = ml_collections.ConfigDict()
  pc.eval.batch_size = 8  # users per evaluation batch
  pc.eval.num_summaries = 4  # users in the summary grids

  # Where a standalone finetune stage takes its networks from.
  config.warm_start.joint = warm_start_source(("modeling", "tracking"))
  config.log_every = 100
  config.checkpoint_every = 2000
  config.best_metric = ""

  if variant == "paper":
    if not ict_available():
      raise ConfigError("variant 'paper' needs ICT-FaceKit: set $JAXFACE_DATA (see README)")
    data.model = "ict"
  if variant == "cpu":
    data.model = "procedural"
    data.image_size = 64
    data.num_frames = 8
    data.num_train, data.num_eval = 1200, 32
    config.batch_size = 4
    pc.steps_joint, pc.steps_finetune = 1500, 500
    pc.encoder_widths = (16, 32, 32, 64, 64, 128, 128)
    pc.decoder_widths = (128, 64, 32, 16)
    pc.tracking_width = 0.25
    pc.eval.batch_size = 8
    config.log_every = 50
    config.checkpoint_every = 500
  if variant == "smoke":
    data.model = "procedural"
    data.image_size = 32
    data.num_frames = 4
    data.num_train, data.num_eval = 4, 3
    config.batch_size = 2
    pc.steps_joint, pc.steps_finetune = 3, 2
    pc.frames_per_user = pc.eval_frames_per_user = 2
    pc.draws_per_user = 2
    pc.encoder_widths = (4, 8, 8, 8, 8, 16, 16)
    pc.decoder_widths = (16, 8, 8, 4)
    pc.tracking_width = 0.125
    pc.eval.batch_size = 3
    pc.eval.num_summaries = 2
    config.log_every = 1
    config.checkpoint_every = 5
    config.progress_bar = False
  if args.model:
    data.model = str(args.model)
  return config
