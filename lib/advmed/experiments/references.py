"""The studies' published figures, with the setting each was measured in.

These are the numbers *they* report (BRIEF.md and ``../shared/seeds/``), kept in one
place so that every chapter shows the study's figure, ours, and the difference from the
same source. Nothing here is a result of ours.

Unit conversions: a study's eps is converted to [0, 1] pixel units with
:func:`eps_to_pixels`, and the conversion is written beside every comparison.
"""
from __future__ import annotations

IMAGENET_MEAN_STD = 0.226  # mean of ImageNet per-channel std (0.229, 0.224, 0.225)

# ``bibkey`` is the study's entry in references.bib (the book cites it with {cite:p}`bibkey`);
# ``short`` is how tables name it.
STUDIES = {
    "adversarialmed": {
        "short": "AdversarialMed",
        "bibkey": "li2019adversarialmed",
        "cite": "Li & Liu, AdversarialMed (CSC2516 course project, 2019)",
        "setting": "DenseNet-121 fine-tuned from CheXNet, Kermany chest X-ray, 224 px",
    },
    "finlayson": {
        "short": "Finlayson et al.",
        "bibkey": "finlayson2018adversarial",
        "cite": "Finlayson et al., Adversarial attacks against medical deep learning systems "
                "(arXiv:1804.05296; Science 2019)",
        "setting": "ResNet-50 / Inception fine-tuned from ImageNet, 224 px, inputs in [-1, 1]",
    },
    "hirano": {
        "short": "Hirano et al.",
        "bibkey": "hirano2021universal",
        "cite": "Hirano, Minagi & Takemoto, Universal adversarial attacks on deep neural networks "
                "for medical image classification (BMC Med Imaging 21, 2021)",
        "setting": "7 architectures, 299 px, ImageNet transfer; skin (7 classes), OCT, pneumonia CXR",
    },
    "minagi": {
        "short": "Minagi et al.",
        "bibkey": "minagi2022natural",
        "cite": "Minagi, Hirano & Takemoto, Natural images allow universal adversarial attacks on "
                "medical image classification using deep neural networks with transfer learning "
                "(J. Imaging 8, 2022)",
        "setting": "UAPs from ImageNet photos only, against transfer-learned medical models",
    },
    "koga": {
        "short": "Koga & Takemoto",
        "bibkey": "koga2022simple",
        "cite": "Koga & Takemoto, Simple black-box universal adversarial attacks on deep neural networks "
                "for medical image classification (Algorithms 15(5):144, 2022)",
        "setting": "U-SimBA from output scores only; ImageNet-transfer models at 299 px; skin lesions, OCT, CXR",
    },
    "medmnist": {
        "short": "MedMNIST v2",
        "bibkey": "yang2023medmnist",
        "cite": "Yang et al., MedMNIST v2 (Sci Data 10, 2023)",
        "setting": "official splits, ResNet-18/50 at 28 or 224 px, test set",
    },
}

# Clean test performance (MedMNIST v2 Table; AdversarialMed README).
CLEAN = [
    # study, task, arch, size, metric: value
    {"study": "medmnist", "task": "pneumoniamnist", "arch": "resnet18", "size": 28, "auc": 0.944, "accuracy": 0.854},
    {"study": "medmnist", "task": "pneumoniamnist", "arch": "resnet18", "size": 224, "auc": 0.956, "accuracy": 0.864},
    {"study": "medmnist", "task": "pneumoniamnist", "arch": "resnet50", "size": 28, "auc": 0.948, "accuracy": 0.854},
    {"study": "medmnist", "task": "pneumoniamnist", "arch": "resnet50", "size": 224, "auc": 0.962, "accuracy": 0.884},
    {"study": "medmnist", "task": "retina5", "arch": "resnet18", "size": 28, "auc": 0.717, "accuracy": 0.524},
    {"study": "medmnist", "task": "retina5", "arch": "resnet18", "size": 224, "auc": 0.710, "accuracy": 0.493},
    {"study": "medmnist", "task": "retina5", "arch": "resnet50", "size": 28, "auc": 0.726, "accuracy": 0.528},
    {"study": "medmnist", "task": "retina5", "arch": "resnet50", "size": 224, "auc": 0.716, "accuracy": 0.511},
    {"study": "adversarialmed", "task": "pneumonia_cxr", "arch": "densenet121", "size": 224, "auc": 0.9910, "accuracy": 0.9547},
]

# AdversarialMed, pneumonia task: eps 0.02 in ImageNet-normalised units.
# Their README gives no attack step size; the step and iteration count of their adversarial
# training (0.005 normalised, 10 iterations) are used for the iterative attacks.
ADVERSARIALMED_ATTACKS = {
    "eps_normalised": 0.02,
    "step_normalised": 0.005,
    "steps": 10,
    "task": "pneumonia_cxr",
    "setting": {"data": "Kermany paediatric CXR", "size": 224, "model": "DenseNet-121",
                "init": "CheXNet (ImageNet, then ChestX-ray14)"},
    "rows": [
        {"attack": "clean", "accuracy": 0.9547, "auc": 0.9910},
        {"attack": "fgsm", "accuracy": 0.0703, "auc": 0.0047},
        {"attack": "ifgsm", "accuracy": 0.0, "auc": 0.0},
        {"attack": "pgd", "accuracy": 0.0, "auc": 0.0},
        {"attack": "mifgsm", "accuracy": 0.0, "auc": 0.0},
    ],
}

# Finlayson et al.: targeted PGD to the other class, eps 0.02 in [-1, 1], step 0.01, 20 its.
# The study reports that accuracy and AUC collapse to about 0 on every task (white box).
FINLAYSON_PGD = {
    "eps_minus1_1": 0.02,
    "step_minus1_1": 0.01,
    "steps": 20,
    "setting": {"size": 224, "model": "ResNet-50 / Inception-v3", "init": "ImageNet"},
    "rows": [
        {"task": "melanoma_derm", "study_task": "dermoscopy (melanoma)", "accuracy": 0.0, "auc": 0.0},
        {"task": "pneumonia_cxr", "study_task": "chest X-ray (pneumothorax)", "accuracy": 0.0, "auc": 0.0},
        {"task": "referable_dr", "study_task": "fundoscopy (referable DR)", "accuracy": 0.0, "auc": 0.0},
    ],
    "note": "the study's text reports 'about 0' for the PGD attack; patch rows are exact",
}

# Finlayson et al.'s black box: the same targeted PGD crafted on a separately trained model
# and fed to the target. BRIEF.md and the issue give the finding, not its figures.
FINLAYSON_BLACKBOX_PGD = {
    "surrogate": "a separately trained model (same task, trained independently of the target)",
    "attack": "targeted PGD to the other class at the white-box setting (FINLAYSON_PGD)",
    "finding": "black-box attacks still succeed",
    "figures": None,  # none in our sources (BRIEF.md, seeds/001): the finding is qualitative
}

FINLAYSON_PATCH = [
    # white-box / black-box / natural-patch control, accuracy and AUC
    {"task": "melanoma_derm", "white_acc": 0.0000, "white_auc": 0.0000, "black_acc": 0.0137,
     "black_auc": 0.0004, "natural_acc": 0.68, "natural_auc": 0.49},
    {"task": "pneumonia_cxr", "white_acc": 0.0001, "white_auc": 0.0000, "black_acc": 0.0967,
     "black_auc": 0.0038, "natural_acc": 0.92, "natural_auc": 0.54},
    {"task": "referable_dr", "white_acc": 0.0029, "white_auc": 0.0000, "black_acc": 0.0397,
     "black_auc": 0.0002, "natural_acc": 0.79, "natural_auc": 0.83},
]

# Hirano et al. 2021: UAPs (non-targeted and targeted) reach > 80 % success at zeta 2-4 %,
# almost independent of architecture; random controls stay low.
HIRANO_UAP = {
    "claim_success_rate": 0.80,
    "zetas": (0.02, 0.04),
    "step": 0.0024,
    "max_passes": 15,
    "resolution": 299,
}

# AdversarialMed's defenses (seeds/000, abstract): adversarial training (0.7 clean + 0.3 I-FGSM,
# eps 0.02 / step 0.005 normalised, 10 iterations) "provides the best protection from various
# adversarial attacks (AUC > 0.95) while maintaining a relatively high performance (AUC about 0.97)
# on the clean data"; JPEG (quality 20) and VAE denoising protect partly (no figures in our sources).
ADVERSARIALMED_DEFENSES = {
    "task": "pneumonia_cxr",
    "jpeg_quality": 20,
    "at_clean_auc": 0.97,          # "AUC about 0.97" on clean data
    "at_robust_auc_min": 0.95,     # "AUC > 0.95" under the attacks
    "jpeg": "partial protection",  # qualitative: no figures in our sources
    "vae": "partial protection",
    "attack_eps_normalised": 0.02,  # the attacks their defenses were measured against
}

# Hirano et al. 2021 (seeds/002): adversarial retraining (5 rounds, 10 UAPs per round, half of
# the fine-tuning images perturbed) "increased DNNs' robustness against UAPs in only very few cases".
HIRANO_RETRAINING = {
    "rounds": 5,
    "uaps_per_round": 10,
    "fraction": 0.5,
    "finding": "retraining lowers the UAP fooling rate in only very few cases",
    # the seed text (seeds/002) and BRIEF.md give the finding, not the schedule: rounds, UAPs per
    # round and the share perturbed are the paper's Methods section, as an earlier reading of it
    # recorded them; they are not checked against a text available to this repository
    "source": "Hirano et al. 2021 (BMC Med Imaging 21), Methods (not in the seed text or BRIEF.md)",
}

# Minagi et al. 2022, the one logged case: melanoma, InceptionV3, L2, zeta 4 %.
MINAGI_NATURAL_UAP = {
    "task": "melanoma_derm", "arch": "inception_v3", "init": "imagenet", "norm": "l2",
    "zeta": 0.04, "fooling_rate": 0.836, "random_fooling_rate": 0.147, "resolution": 299,
}


# Koga & Takemoto 2022, their logged U-SimBA case: melanoma, Inception-V3, L2 zeta 4 %, 5,000
# iterations on 100 input images: 73 % success (on those images) in 1.46 hours.
KOGA_USIMBA = {
    "task": "melanoma_derm", "arch": "inception_v3", "init": "imagenet", "norm": "l2", "zeta": 0.04,
    "iterations": 5000, "n_images": 100, "success_rate": 0.73, "rate_on": "the 100 input images",
    "hours": 1.46, "resolution": 299,
    # neither the seed texts nor BRIEF.md give these figures: they are the paper's logged case, as
    # an earlier reading of it recorded them, not checked against a text available to this repository
    "source": "Koga & Takemoto 2022 (Algorithms 15(5):144), their logged case (not in the seed texts or BRIEF.md)",
}


# Each study's setting, as the seeds and BRIEF.md give it ("not stated" where they do not):
# the rows every chapter shows beside ours (advmed.experiments.compare.settings_beside).
STUDY_SETTINGS = {
    "adversarialmed": {
        "data": "Kermany paediatric CXR (Kaggle split)", "resolution": "224 px", "architecture": "DenseNet-121",
        "initialisation": "CheXNet (ImageNet, then ChestX-ray14)", "optimiser and epochs": "Adam, lr 1e-4",
        "attack iterations": "FGSM 1; I-FGSM, PGD, MI-FGSM 10 (their adversarial training's)",
        "images": "the Kaggle test folder (624)",
    },
    "finlayson": {
        "data": "fundoscopy (referable DR), CXR (pneumothorax), dermoscopy (melanoma)", "resolution": "224 px",
        "architecture": "ResNet-50 / Inception-v3", "initialisation": "ImageNet", "optimiser and epochs": "not stated",
        "attack iterations": "PGD 20 (targeted); patch trained with EOT", "images": "their test sets",
    },
    "hirano": {
        "data": "ISIC 2018 skin lesions (7 classes), OCT, pneumonia CXR", "resolution": "299 px",
        "architecture": "VGG-16/19, ResNet-50, Inception-v3, Inception-ResNet-v2, DenseNet-121/169",
        "initialisation": "ImageNet", "optimiser and epochs": "SGD (momentum), lr 1e-3, 20-50 epochs",
        "attack iterations": "UAP: up to 15 passes, FGSM step 0.0024 ((X-128)/128 units)",
        "images": "UAP built on the training set, evaluated on the test set",
    },
    "koga": {
        "data": "ISIC melanoma vs nevus (logged case); OCT, CXR", "resolution": "299 px",
        "architecture": "Inception-v3 (logged case)", "initialisation": "ImageNet",
        "optimiser and epochs": "SGD, as Hirano et al.",
        "attack iterations": "U-SimBA 5,000 iterations (2 queries per image each)",
        "images": "100 input images (the rate is on them)",
    },
    "minagi": {
        "data": "ISIC melanoma vs nevus (and others)", "resolution": "299 px", "architecture": "Inception-v3 (logged case)",
        "initialisation": "ImageNet (and from scratch)", "optimiser and epochs": "SGD, as Hirano et al.",
        "attack iterations": "UAP from ImageNet photos, up to 15 passes", "images": "photos only to build; medical test set",
    },
}


def eps_to_pixels(eps: float, convention: str) -> float:
    """Convert a study's eps to [0, 1] pixel units.

    ``convention``: ``"pixels"`` ([0, 1]), ``"pixels255"`` ([0, 255]), ``"minus1_1"``
    (inputs in [-1, 1], Finlayson et al.: the range is twice as wide, so halve it) or
    ``"imagenet_normalised"`` (AdversarialMed: (x - mean) / std, so multiply by the mean
    ImageNet std, 0.226).
    """
    factors = {
        "pixels": 1.0,
        "pixels255": 1.0 / 255.0,
        "minus1_1": 0.5,
        "imagenet_normalised": IMAGENET_MEAN_STD,
    }
    if convention not in factors:
        raise KeyError(f"unknown eps convention {convention!r}; valid: {', '.join(factors)}")
    return float(eps) * factors[convention]
