r"""3DFaceFill (Dey & Boddeti, WACV 2022) on jaxface's synthetic face images (dataset (b)).

    python train/main.py --config=configs/facefill.py:smoke --workdir=runs/facefill_smoke
    python train/main.py --config=configs/facefill.py:cpu --workdir=runs/ff_cpu
    python train/main.py --config=configs/facefill.py:cpu,stage=inpaint,ablation=no_sym \
      --config.warm_start.three_dmm.workdir=runs/ff_cpu --workdir=runs/ff_cpu_no_sym
    python -m jaxface.methods.facefill.report runs/ff_cpu runs/ff_cpu_no_sym

`smoke` trains the four stages in one run, evaluates (with the Telea
baseline) and writes summaries in 1.5-2.5 min on the 2-core CPU, most of it
compiling; its numbers mean nothing. `cpu` is the documented CPU budget of
docs/results/facefill.md (64 x 64 images, quarter-width networks). A stage
can also run alone (`stage=NAME`), starting from earlier runs' weights (the
trainer's warm starts, below): that is how an ablation retrains only the
stage it changes.

Variants (`file.py:variant[,key=value...]`):
  default   the paper's settings (supplement sec. 4.3) on ICT-FaceKit when
            $JAXFACE_DATA has it, else on the procedural model.
  paper     the same, but requires ICT-FaceKit.
  cpu       procedural model, 64 x 64 images, quarter-width networks.
  smoke     procedural model, tiny: every stage a few steps (used by the tests).
Arguments: stage=all|3dmm|3dmm_unsup|inpaint|segment (default all),
ablation=none|no_sym|no_il|no_ir (or the ablation alone as the variant),
model=procedural|ict|PATH.

Stages (supplement sec. 4.3), in this order:
  3dmm        encoder E + albedo decoder D_A, supervised (shape, pose, texture,
              landmarks) + reconstruction + regularisers (supplement eq. 1).
  3dmm_unsup  the same modules at 1/10 of the learning rate with only the
              reconstruction, landmark and regularisation losses, on images
              with artificial rectangular occlusions (alone: from warm_start.three_dmm).
  inpaint     Sym-UNet G and PyramidGAN D, 1:1 alternating, with the 3DMM
              module frozen (alone: from warm_start.three_dmm).
  segment     the face segmenter S (focal loss), independent of the others.
  all         the four in that order in ONE run (the default).
A standalone stage takes the earlier stages' modules from other runs with
`--config.warm_start.three_dmm.workdir=RUN` (encoder + albedo decoder),
`warm_start.inpaint.workdir` (Sym-UNet + discriminator) and
`warm_start.segment.workdir` (segmenter), each at that run's latest
checkpoint or at `warm_start.<name>.step`. Only those modules are taken, so
runs with other settings (another ablation) can be sources. The trainer
applies them to a fresh run only: a resumed run restores its own checkpoint
and never reads its sources again, so they may be deleted.

How `stage=all` runs: the method's `stages(config)` lists one record per
stage (name, steps, step function, modules, optimiser) and the generic
trainer jits each stage's step once, when its stage starts, over one state
(every module, one optimiser state per stage) and one checkpoint series.
Resume, preemption, the NaN guard and checkpoints therefore work across stage
boundaries unchanged, and a standalone stage is the same code with one
record. The run's length is the sum of the stages' `steps_<stage>`. Metrics
are named `<stage>/<name>`, `train/phase` logs the stage index, and no
logging interval straddles a stage boundary.

Choices the paper leaves open (all fields below are documented beside them):
- Camera: weak perspective, as the paper and its code (the synthetic images
  are perspective; see `jaxface.methods.facefill.render` for the error).
- Loss weights: "all loss coefficients equal" is read as weight 1 per term,
  with each term in a unit where 1 is meaningful: the shape term per
  coefficient (lambda_S = 1/K of E||f - f~||^2), landmarks in NDC (pixels /
  half the image size, the render layer's unit), texture as L1 (the public
  code's). The inpainter's terms are the public code's (uncertainty-weighted
  UV and image L1, thresholded symmetry L1, hinge GAN + WGAN-GP 10); the
  adversarial weight is not given and is 0.1, as in DeepFill/EdgeConnect.
  The image L1 counts over the holes, not the whole face: outside them the
  blend is the input, so the term is 0 there and its uncertainty part would
  only push the log-uncertainty to -inf.
- Optimiser: Adam(1e-4) for every module except D (3e-4), step decay 0.98
  per epoch (supplement); betas (0.5, 0.999) from the public code.
- Sym-UNet: `symmetry="branch"`, the paper's network (Table 5); "exact" is
  jaxface's exactly mirror-equivariant variant at twice the compute.
- Augmentation: random horizontal flips for the inpainter and segmenter;
  none for the 3DMM stages (a flip would need mirrored landmark and shape
  targets) and no 256 -> 224 crop (the synthetic faces are already jittered).
- Masks: the public code's rectangle sampler on the visible face (training);
  evaluation uses the fixed per-bucket masks of `masks.evaluation_masks`
  on the visible face, and the ground-truth segmentation (so the table
  measures completion, not segmentation); the segmenter gets its own metrics.
- Batch size (not given): 16 for paper/default.
- A sample whose 3DMM fit shows less than 1% of the UV map (an untrained or
  lost fit) sends no gradient to the Sym-UNet: its constant input makes
  GroupNorm's backward overflow (`inpaint/usable` logs the fraction used).
"""

from __future__ import annotations

import ml_collections

from jaxface.errors import ConfigError
from jaxface.morphable.loaders import ict_available
from jaxface.training import loop_defaults, parse_arg, warm_start_source

VARIANTS = ("default", "paper", "cpu", "smoke")
ABLATIONS = ("none", "no_sym", "no_il", "no_ir")
STAGES = ("3dmm", "3dmm_unsup", "inpaint", "segment")


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
  config.method = "facefill"
  config.variant = variant
  config.ablation = ablation  # a label; the switches it sets are the fields below

  # Dataset (b): rendered faces with exact ground truth, occluders and backgrounds.
  config.data = data = ml_collections.ConfigDict()
  data.model = "ict" if ict_available() else "procedural"
  data.num_train = 30_000  # the paper's 300W-3D / CelebA stand-in
  data.num_eval = 1_000
  data.image_size = 224  # the paper's crop; a multiple of 32
  data.seed = 0
  data.data_dir = ""  # where generated datasets go; "" = $JAXFACE_CACHE/datasets

  config.facefill = ff = ml_collections.ConfigDict()
  ff.stage = stage  # "all" or one of STAGES
  # Steps per stage (supplement sec. 4.3); a stage with 0 steps is skipped by stage=all.
  _set_steps(ff, 100_000, 30_000, 30_000, 50_000)
  # Runs (a workdir or its checkpoints/) whose modules start a fresh run: the trainer's warm starts.
  config.warm_start.three_dmm = warm_start_source(("encoder", "decoder"))  # for 3dmm_unsup, inpaint
  config.warm_start.inpaint = warm_start_source(("inpainter", "discriminator"))
  config.warm_start.segment = warm_start_source(("segmenter",))

  # Networks (supplement Tables 3-7).
  ff.num_identity = -1  # shape coefficients Ki predicted (-1: all of the model's)
  ff.num_expression = -1  # expression coefficients Ke (-1: all)
  ff.feature_dim = 512  # albedo features between E and D_A
  ff.uv_size = (192, 256)  # (Hu, Wu) of the UV albedo (Table 4)
  ff.decoder_upsamplings = 6  # D_A's 2x upsamplings (6: from 3 x 4 to 192 x 256)
  ff.widths = ml_collections.ConfigDict(
    {"encoder": 1.0, "decoder": 1.0, "inpainter": 1.0, "discriminator": 1.0, "segmenter": 1.0}
  )  # channel multipliers (1: the paper's networks)
  ff.symmetry = "branch"  # Sym-UNet mode: "branch" (Table 5), "exact" (equivariant), "none"
  ff.remove_shading = True  # complete albedo (3DFaceFill) or the shaded texture (no_il)
  ff.iterations = 2  # completion passes at inference (iterative refinement; no_ir: 1)

  # 3DMM losses (supplement eq. 1 and sec. 4.2).
  ff.lambda_sup = 1.0
  ff.lambda_rec = 1.0
  ff.lambda_reg = 1.0
  ff.lambda_shape = -1.0  # -1: 1 / (Ki + Ke), i.e. the mean squared coefficient error
  ff.lambda_pose = 1.0  # lambda_p of the pose loss, which weighs its parts by:
  ff.lambda_scale = 1.0  # lambda_s
  ff.lambda_translation = 1.0  # lambda_t
  ff.lambda_rotation = 1.0  # lambda_r
  ff.lambda_texture = 1.0
  ff.lambda_landmark = 1.0  # landmarks in NDC units (pixels / half the image size)
  ff.lambda_sym3d = 1.0  # albedo symmetry L_3dsym
  ff.lambda_const = 1.0  # albedo constancy L_const
  ff.texture_loss = "l1"  # "l1" (public code) or "l2" (the supplement's formula)
  # Inpainting losses (main eq. 2 as the public code has it).
  ff.lambda_uv = 1.0  # uncertainty-weighted L1 of the completed UV albedo
  ff.lambda_symmetry = 1.0  # thresholded symmetry L1 (0 for no_sym)
  ff.lambda_image = 1.0  # uncertainty-weighted L1 of the blended image
  ff.lambda_gan = 0.1  # hinge generator loss
  ff.gradient_penalty = 10.0  # WGAN-GP weight in the discriminator loss (public code)
  ff.uncertainty = True  # weight the L1 terms by the predicted log-uncertainty
  # Where the image L1 looks: "holes" (the hidden pixels of the completion) or "face" (the
  # public code's: the re-rendered face blended over the whole face region, on the face mask).
  ff.image_loss_region = "holes"
  # What the frozen 3DMM encoder factorises while the inpainter trains: "masked" (the input the
  # inpainter gets, as at test time) or "unmasked" (the public code's: the full image).
  ff.factorise_input = "masked"
  # Segmenter.
  ff.focal_gamma = 2.0  # Lin et al.'s default (not given)

  # Optimisation (supplement sec. 4.3).
  ff.learning_rate = 1e-4  # E, D_A, G, S
  ff.discriminator_learning_rate = 3e-4
  ff.unsup_lr_factor = 0.1  # 3dmm_unsup trains at 1/10 of learning_rate
  ff.beta1 = 0.5
  ff.beta2 = 0.999
  ff.lr_decay = 0.98  # per epoch (num_train / batch_size steps), per stage

  # Evaluation: PSNR / SSIM by mask-to-face ratio bucket on the eval split.
  ff.eval = ml_collections.ConfigDict()
  ff.eval.batch_size = 16  # completions per jitted call
  ff.eval.num_images = 1_000  # eval images used (at most num_eval)
  ff.eval.buckets = ((0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5))  # one mask per image each
  ff.eval.mask_seed = 0  # seed of the fixed evaluation masks
  ff.eval.baselines = ("telea", "navier_stokes")  # classical baselines in the same table
  ff.eval.lpips = ""  # LPIPS v0.1 weights (.npz or folder); "": $JAXFACE_LPIPS; none: n/a
  ff.eval.num_summaries = 8  # images in the summary grids

  config.batch_size = 16
  config.log_every = 100
  config.checkpoint_every = 5_000
  config.eval_every = 0
  config.summary_every = 0

  if variant == "paper":
    data.model = "ict"
  elif variant == "cpu":
    data.model = "procedural"
    data.num_train = 4096
    data.num_eval = 128
    data.image_size = 64
    _set_steps(ff, 2000, 500, 2000, 500)
    ff.num_identity, ff.num_expression = 20, 10
    ff.feature_dim = 128
    ff.uv_size = (64, 64)
    ff.widths = ml_collections.ConfigDict(
      {"encoder": 0.25, "decoder": 0.25, "inpainter": 0.25, "discriminator": 0.25,
       "segmenter": 0.25}
    )  # fmt: skip
    # Few steps: larger steps than the paper's 1e-4 so that each stage moves.
    ff.learning_rate = 1e-3
    ff.discriminator_learning_rate = 3e-3
    ff.eval.num_images = 128
    ff.eval.baselines = ("telea", "navier_stokes", "biharmonic")
    config.log_every = 50
    config.checkpoint_every = 100
  elif variant == "smoke":
    data.model = "procedural"
    data.num_train = 32
    data.num_eval = 8
    data.image_size = 64
    _set_steps(ff, 4, 2, 4, 2)
    ff.num_identity, ff.num_expression = 8, 8
    ff.feature_dim = 16
    ff.uv_size = (64, 64)
    ff.widths = ml_collections.ConfigDict(
      {"encoder": 1 / 16, "decoder": 1 / 16, "inpainter": 1 / 16, "discriminator": 1 / 16,
       "segmenter": 1 / 16}
    )  # fmt: skip
    ff.eval.batch_size = 8
    ff.eval.num_images = 8
    ff.eval.baselines = ("telea",)
    ff.eval.num_summaries = 4
    config.batch_size = 4
    config.log_every = 2
    config.checkpoint_every = 6
  if args.model:
    data.model = args.model

  if ablation == "no_sym":
    ff.symmetry = "none"
    ff.lambda_symmetry = 0.0
  elif ablation == "no_il":
    ff.remove_shading = False
  elif ablation == "no_ir":
    ff.iterations = 1

  return config


def _set_steps(ff: ml_collections.ConfigDict, three_dmm, three_dmm_unsup, inpaint, segment):
  """`steps_<stage>` fields: flag-friendly names (`--config.facefill.steps_3dmm=N`)."""
  ff.steps_3dmm = three_dmm
  ff.steps_3dmm_unsup = three_dmm_unsup
  ff.steps_inpaint = inpaint
  ff.steps_segment = segment
