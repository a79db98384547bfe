r"""Shu et al., Learning Monocular Face Reconstruction using Multi-View Supervision (FG 2020).

    python train/main.py --config=configs/multiview_depth.py:smoke --workdir=runs/mvd_smoke
    python train/main.py --config=configs/multiview_depth.py:cpu,stage=3dmm --workdir=runs/mvd_3dmm
    python train/main.py --config=configs/multiview_depth.py:cpu,stage=depth \
      --config.warm_start.three_dmm.workdir=runs/mvd_3dmm --workdir=runs/mvd_full
    python train/main.py --config=configs/multiview_depth.py:cpu,stage=depth,ablation=no_occlusion \
      --config.warm_start.three_dmm.workdir=runs/mvd_3dmm --workdir=runs/mvd_no_occlusion
    python -m jaxface.methods.multiview_depth.predict --image PHOTO --workdir runs/mvd_full \
      --output out/

`smoke` trains both stages for a few steps on 32 x 32 images and evaluates
in about two minutes on the 2-core CPU, mostly compiling; its numbers mean
nothing. `cpu` is the documented CPU budget of
docs/results/multiview_depth.md (64 x 64 images, narrow networks). Every
evaluation also reports the `3dmm_only` baseline (the depth rendered from
3DMMNet's fit) and the best least-squares 3DMM fit to the true mesh (the
floor of any 3DMM), so the baseline is not a separate run.

Variants (`file.py:variant[,key=value...]`):
  default   the paper's settings (360 x 360) on ICT-FaceKit when $JAXFACE_DATA has
            it, else on the procedural model.
  paper     the same, but requires ICT-FaceKit.
  cpu       procedural model, 64 x 64 images, narrow networks, 3000 / 1000 steps
            (about 20 / 25 minutes on the 2-core CPU, evaluation included).
  smoke     procedural model, tiny (used by the tests).
Arguments: stage=all|3dmm|depth (default all),
ablation=none|no_multiview|no_suitability|no_occlusion (or the ablation alone as the variant),
model=procedural|ict|PATH.

Ablations (the depth stage; the 3DMM stage is the same for all):
  no_multiview    synthetic data only: no real-like pairs (the paper's "without Multi-PIE").
  no_suitability  no suitability network: C = 1, no E_reg (eq. 12 instead of 14).
  no_occlusion    no occlusion mask: every pixel of the view-1 3DMM render is compared
                  (eq. 11 instead of 12).

Choices the paper leaves open (fields below are documented beside them):
- Photo loss norm: L1 of RGB (mean over channels and compared pixels), as
  eq. 11's ||.|| reads and as the robust default of self-supervised depth
  (Zhou et al. 2017); `photo_loss="l1_ssim"` mixes in 3 x 3 SSIM (weight
  0.85, Godard et al.), whose structure term ignores a camera's gain and
  offset. L1 is the default because it keeps eq. 14 linear in C, so the
  suitability regulariser's weight reads as the photo error above which a
  pixel is not worth comparing.
- Suitability regulariser weight (eq. 15 has none): 0.1. With both terms
  L1 on the same pixels, h lowers C exactly where the photo error stays above
  the weight (0.1 ~ 25 grey levels); at weight 1 it could never pay off.
- Landmark loss in percent of the image side (one percent of misplacement
  weighs like one unit of coefficient L1).
- Camera: 3DMMNet predicts (pitch, yaw, roll) and a translation around the
  nominal distance; the focal length is the data's fixed one (16 deg fov).
- eq. 11's warp uses f(I^2) in the paper's notation; inverse warping of
  view 2 into view 1 needs view 1's depth, so jaxface uses f(I^1) (SfM-Net
  and Zhou et al. do the same). Pairs are ordered and both orders are drawn.
- Normalised depth (eq. 7): a < 0 so the nose tip maps to c = 0.9 and the
  deepest face point to about 0.1; background is 0, as the 3DMM render's.
- Real-like identity labels: the true first Ki coefficients plus N(0, 0.25^2),
  standing in for the pseudo-labels of Tran et al.'s regressor.
- Batch size (not given): 16 for paper/default, 8 for cpu.
"""

from __future__ import annotations

import ml_collections

from jaxface.errors import ConfigError
from jaxface.morphable.loaders import ict_available
from jaxface.training import loop_defaults, parse_arg, warm_start_source

VARIANTS = ("default", "paper", "cpu", "smoke")
ABLATIONS = ("none", "no_multiview", "no_suitability", "no_occlusion")
STAGES = ("3dmm", "depth")
#: eq. 7's a per built-in model: -0.8 / (the mean face's depth behind its nose tip).
DEPTH_SCALE = {"procedural": -0.085, "ict": -0.049}


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
  config.method = "multiview_depth"
  config.variant = variant
  config.ablation = ablation  # a label; the switches it sets are the fields below
  config.batch_size = 16

  # jaxface.data.multiview: synthetic, real-like (Multi-PIE stand-in), test and Florence faces.
  config.data = data = ml_collections.ConfigDict()
  data.model = "ict" if ict_available() else "procedural"
  data.image_size = 360  # the paper's input and output size
  data.num_synthetic = 3500  # the paper's 3DDFA configurations, 10 views each
  data.num_real = 2000  # one face at one instant, 9 rig cameras each
  data.num_test = 100  # BU-3DFE has 100 subjects
  data.num_florence = 53  # Florence has 53 subjects, 20 poses each
  data.seed = 0
  data.data_dir = ""  # "": <$JAXFACE_CACHE or ~/.cache/jaxface>/datasets
  # The real-like faces' surface detail (0: none). At 2 the best fit of the 10-mode 3DMM misses
  # the true depth by ~1.9% of its range (1.3% at 1, 1.0% at 0): geometry a depth map can win.
  data.detail_strength = 2.0
  data.specular_strength = 1.0  # their highlight (0: Lambertian)
  data.landmark_noise = 0.01  # their detector noise, fraction of the image side

  config.multiview = mv = ml_collections.ConfigDict()
  mv.stage = stage
  mv.steps_3dmm = 50_000
  mv.steps_depth = 50_000
  mv.learning_rate = 2e-4  # sec. IV, both stages
  mv.num_identity = 20  # 3DMMNet's identity modes (real-like faces use all of the model's)
  mv.num_expression = 40  # its expression modes
  mv.nominal_distance = 4.4  # camera distance in face heights (the data's range is 4-4.8)
  mv.depth_a = DEPTH_SCALE["procedural"]  # eq. 7; set per model below
  mv.depth_c = 0.9  # eq. 7: the nose tip's D'
  mv.face_threshold = 0.05  # D' above which a predicted pixel is face (inference, evaluation)
  mv.lambda_identity = 1.0  # eq. 3 lambda1
  mv.lambda_expression = 1.0  # eq. 3 lambda2 (0 on real-like images, which have no label)
  mv.lambda_3dmm = 0.02  # eq. 10 lambda3
  mv.occlusion_threshold = 0.05  # eq. 13, in normalised depth units
  mv.photo_loss = "l1"  # or "l1_ssim" (see the docstring)
  mv.ssim_weight = 0.85  # the SSIM share of "l1_ssim"
  mv.suitability_weight = 0.1  # eq. 15's weight (see the docstring)
  mv.use_real = ablation != "no_multiview"
  mv.use_suitability = ablation != "no_suitability"
  mv.use_occlusion = ablation != "no_occlusion"
  mv.depth_widths = (64, 128, 256, 512)  # DepthNet's U-Net levels (360 = 45 * 2^3)
  mv.suitability_widths = (32, 64, 128, 256)
  mv.densenet = ml_collections.ConfigDict(
    {"blocks": (6, 12, 24, 16), "growth": 32, "stem_features": 64}  # DenseNet-121
  )
  mv.eval = ml_collections.ConfigDict()
  mv.eval.batch_size = 16
  mv.eval.num_summaries = 4
  mv.eval.icp_iterations = 30

  # Where a standalone depth stage takes its trained 3DMMNet from.
  config.warm_start.three_dmm = warm_start_source(("three_dmm",))
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
    data.num_synthetic, data.num_real, data.num_test, data.num_florence = 600, 600, 64, 16
    config.batch_size = 8
    mv.steps_3dmm, mv.steps_depth = 3000, 1000
    mv.num_identity = 10
    mv.depth_widths = (16, 32, 64, 128)
    mv.suitability_widths = (8, 16, 32, 64)
    mv.densenet = ml_collections.ConfigDict(
      {"blocks": (2, 4, 6), "growth": 12, "stem_features": 24}
    )
    mv.eval.batch_size = 32
    config.log_every = 50
    config.checkpoint_every = 500
  if variant == "smoke":
    data.model = "procedural"
    data.image_size = 32
    data.num_synthetic, data.num_real, data.num_test, data.num_florence = 4, 4, 8, 2
    config.batch_size = 2
    mv.steps_3dmm = mv.steps_depth = 3
    mv.num_identity, mv.num_expression = 6, 10
    mv.depth_widths = (8, 16, 32)
    mv.suitability_widths = (4, 8, 16)
    mv.densenet = ml_collections.ConfigDict({"blocks": (1, 1), "growth": 4, "stem_features": 8})
    mv.eval.batch_size = 8
    mv.eval.num_summaries = 2
    config.log_every = 1
    config.checkpoint_every = 3
    config.progress_bar = False
  if args.model:
    data.model = str(args.model)
  mv.depth_a = DEPTH_SCALE.get(str(data.model), mv.depth_a)
  return config
