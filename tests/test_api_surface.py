"""The public API: names that users import must not disappear, and ``__all__`` stays honest."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

# Names each public module promises. Adding names is fine; removing one is a breaking change.
PUBLIC = {
    "fgad": [
        "AnomalySynthesizer",
        "Evaluator",
        "FGADLoss",
        "TrainConfig",
        "__version__",
        "augment",
        "create_model",
        "data",
        "engine",
        "evaluate",
        "export",
        "fit",
        "is_model",
        "list_models",
        "load_model",
        "losses",
        "metrics",
        "models",
        "predict",
        "register_model",
        "save_pretrained",
        "set_validation",
        "testing",
        "validation",
    ],
    "fgad.augment": [
        "AnomalySynthesizer",
        "CutPaste",
        "CutPasteParams",
        "CutPasteScar",
        "ForegroundCache",
        "ForegroundMask",
        "MixedParams",
        "MixedSynthesizer",
        "NSAParams",
        "NaturalSyntheticAnomaly",
        "PerlinMask",
        "ScarParams",
        "SynthesisParams",
        "SynthesisResult",
        "TextureAugment",
        "TextureParams",
        "adjust_brightness",
        "adjust_sharpness",
        "autocontrast",
        "create_synthesizer",
        "equalize",
        "is_synthesizer",
        "list_synthesizers",
        "otsu_threshold",
        "perlin_noise",
        "poisson_blend",
        "posterize",
        "register_synthesizer",
        "solarize",
    ],
    "fgad.models": [
        "AnomalyDetector",
        "DetectorOutput",
        "ReconstructiveAutoencoder",
        "UNetSegmenter",
        "create_model",
        "is_model",
        "list_models",
        "load_model",
        "register_model",
        "save_pretrained",
    ],
    "fgad.losses": [
        "FGADLoss",
        "FocalLoss",
        "LossOutput",
        "ReconstructionLoss",
        "SSIMLoss",
        "create_loss",
        "focal_loss",
        "list_losses",
        "register_loss",
        "ssim",
    ],
    "fgad.metrics": [
        "Evaluator",
        "UndefinedMetricWarning",
        "aupro",
        "auroc",
        "average_precision",
        "f1_max",
        "image_auroc",
        "label_regions",
        "pixel_ap",
        "pixel_auroc",
        "precision_recall_curve",
        "pro_curve",
        "roc_curve",
    ],
    "fgad.data": [
        "BTAD",
        "ImageFolder",
        "MVTecAD",
        "TextureFolder",
        "demo_root",
        "to_float",
    ],
    "fgad.engine": ["TrainConfig", "benchmark", "evaluate", "fit", "get_preset", "list_presets", "predict"],
    "fgad.export": ["to_onnx"],
    "fgad.testing": [
        "assert_batch_equals_samples",
        "assert_label_consistent",
        "assert_mask_binary",
        "assert_replay_exact",
        "assert_untouched_outside_mask",
        "generators",
        "image_batches",
        "texture_banks",
    ],
    # Adapters to other libraries (each imports its library; the extras are in `dev`).
    "fgad.augment.kornia": [
        "RandomAutoContrast",
        "RandomBrightness",
        "RandomEqualize",
        "RandomPosterize",
        "RandomSharpness",
        "RandomSolarize",
        "RandomTexture",
    ],
    "fgad.augment.transforms": ["SyntheticAnomaly"],
    "fgad.augment.registry": [
        "SYNTHESIZERS",
        "create_synthesizer",
        "is_synthesizer",
        "list_synthesizers",
        "register_synthesizer",
    ],
    "fgad.augment.cutpaste": ["CutPaste", "CutPasteParams", "CutPasteScar", "ScarParams"],
    "fgad.augment.nsa": ["NSAParams", "NaturalSyntheticAnomaly"],
    "fgad.augment.mixed": ["MixedParams", "MixedSynthesizer"],
    "fgad.augment.poisson": ["poisson_blend"],
    "fgad.integrations.anomalib": ["Fgad", "FgadInference"],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_public_names_present_and_sorted(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert exported == sorted(exported), f"{module_name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{module_name}.__all__ has duplicates"
    missing = sorted(set(PUBLIC[module_name]) - set(exported))
    assert not missing, f"{module_name} lost public names: {missing}"
    for name in exported:
        assert getattr(module, name) is not None, f"{module_name}.{name} does not resolve"


def test_unknown_top_level_attribute_is_an_attribute_error() -> None:
    import fgad

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fgad.nope  # noqa: B018


def test_validation_switch_is_public() -> None:
    # fgad.set_validation / fgad.validation are the switch the input checks read, not copies of it.
    import fgad
    import fgad._checks

    assert fgad.set_validation is fgad._checks.set_validation
    assert fgad.validation is fgad._checks.validation
    with fgad.validation(False):
        assert not fgad._checks.is_validating()
    fgad.set_validation(False)
    try:
        assert not fgad._checks.is_validating()
    finally:
        fgad.set_validation(True)
    assert fgad._checks.is_validating()


def test_augment_imports_without_the_networks() -> None:
    # The transforms are meant to be imported into other projects' training code on their own.
    code = (
        "import sys; from fgad.augment import AnomalySynthesizer; "
        "assert 'timm' not in sys.modules and 'fgad.models' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_top_level_all_matches_lazy_table() -> None:
    import fgad

    lazy = set(fgad._SUBMODULES) | set(fgad._ATTRIBUTES) | {"__version__"}
    assert set(fgad.__all__) == lazy


def test_augment_imports_none_of_the_adapted_libraries() -> None:
    # kornia, torchvision and anomalib are imported by their adapter modules only.
    code = (
        "import sys; import fgad.augment; "
        "bad = [m for m in ('kornia', 'torchvision', 'anomalib', 'lightning') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
