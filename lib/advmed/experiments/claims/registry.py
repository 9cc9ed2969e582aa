"""The claims registry: every claim the book tests, with its rule fixed before the numbers.

One :class:`ClaimSpec` per claim holds the study's own sentence (quoted verbatim from the seed
text, with the file it comes from), where the study's figure comes from (the seed text, or the
study's paper or code, cited), the study's setting, what we measure, how cases are aggregated
and why, and the decision rule of each part (:class:`Rule`: kind, figure, margin, the effect
size of "same direction"), which :func:`advmed.experiments.claims.statistics.decide` applies.

The registry is sealed: :func:`fingerprint` hashes every rule, figure, margin and aggregation,
and :data:`CHANGELOG` records each accepted fingerprint with a date and the reason for the
change. A test fails when the fingerprint is not the last entry's, so a margin cannot move
after the results are seen without a dated, stated reason.

The studies' figures come from :mod:`advmed.experiments.references` (nothing is retyped
here); the margins are this book's, each with its reason.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from .. import references
from ..blackbox.tables import BLACKBOX_SUCCESS
from ..defenses.tables import PARTIAL_GAIN

SEEDS = {"adversarialmed": "000_ab2951b45505d779.txt", "finlayson": "001_0132b3abf1efc58c.txt",
         "hirano": "002_078c23841c77f9e5.txt", "minagi": "002_078c23841c77f9e5.txt"}

#: "About 0" (or "drops to 0"): an accuracy or AUC below this. The studies round to two
#: digits and call 0.0703 a plunge, so 0.05 is the largest value one would still write as 0.
ABOUT = 0.05
#: The margin of a study figure reported once, without an interval (a clean accuracy or AUC):
#: two points, about the run-to-run spread of a fine-tuned classifier on a few hundred images.
FIGURE_MARGIN = 0.02
#: The margin of an attacked figure ("plunges to 0.0703"): five points, the width of "about".
ATTACK_MARGIN = 0.05
#: The smallest effect "same direction" accepts: a drop (or a gain over a control) of at
#: least ten points with its whole interval, well above the rounding of any figure we compare.
EFFECT = 0.10
#: Our reading of "only very few cases": more than none, at most a third of the cases.
FEW_CASES = 1 / 3
#: "Depended very little on the model architecture": the spread of fooling rates across
#: architectures (same task, norm and zeta) below this.
ARCHITECTURE_SPREAD = 0.10
#: Our reading of "almost imperceptible": the perturbed image keeps a structural similarity
#: (SSIM, Wang et al. 2004) of at least this with the clean one, median over held-out images.
#: SSIM 1 is identical; a criterion on structure rather than on pixel norms, because the studies'
#: UAPs are bounded by a share of the image norm, not by grey levels. The book's reading, not the
#: study's (which gives no measure).
IMPERCEPTIBLE_SSIM = 0.95


class Rule(NamedTuple):
    """How one part of a claim is decided (:func:`~.statistics.decide`).

    ``kind``: ``equivalent`` | ``above`` | ``below``; ``figure``: the study's figure or bound,
    in [0, 1]; ``margin``: the equivalence margin, or how far beyond a bound ours must lie to
    disagree; ``effect``: the smallest effect (vs the part's reference: clean, a control) that
    "same direction" accepts, NaN where the claim has no direction; ``lower_is_effect``: the
    effect lowers the quantity (an attack) rather than raises it (a defense, a fooling rate).
    """

    kind: str
    figure: float
    margin: float
    effect: float = math.nan
    lower_is_effect: bool = True


@dataclass(frozen=True)
class ClaimSpec:
    """One claim, fixed before the numbers.

    Attributes:
        number: the claim's number (the order of chapter 8's table).
        study: the study key (``references.STUDIES``); ``seed``: the seed text's file name.
        quote: the study's sentence, verbatim from the seed text.
        figure_source: where the study's figure comes from ("seed text", the paper, the code).
        statement: the claim in the book's words (short, for tables).
        setting: the study's setting: data, resolution, model, init, attack, eps in [0, 1] and in
            the study's units, steps.
        metric: what we measure.
        rules: the parts of the claim and the rule of each (all must agree).
        aggregation: how several tasks, models or UAPs become one estimate; ``why``: the reason.
        strongest: what "the book's strongest evaluation" means for this claim.
        text_vs_code: where the study's text and its code differ, and which the book tests.
        recipe: what the cpu profile shortens that the claim depends on ("" when nothing).
    """

    number: int
    study: str
    seed: str
    quote: str
    figure_source: str
    statement: str
    setting: str
    metric: str
    rules: tuple[tuple[str, Rule], ...]
    aggregation: str
    why: str
    strongest: str
    text_vs_code: str = ""
    recipe: str = ""
    strongest_rules: tuple[tuple[str, Rule], ...] = ()

    def rules_at(self, setting: str) -> tuple[tuple[str, Rule], ...]:
        """The rules at ``setting``: ``"study"``, or ``"strongest"`` (its own rules where the
        study's figure is one attack's and a stronger attack may only lower it)."""
        return self.strongest_rules if setting == "strongest" and self.strongest_rules else self.rules

    def rule_figure(self, part: str) -> float:
        """The study's figure or bound of ``part`` at the study's setting."""
        return dict(self.rules)[part].figure


_AM = references.ADVERSARIALMED_ATTACKS
_AM_ROWS = {r["attack"]: r for r in _AM["rows"]}
_AM_EPS = references.eps_to_pixels(_AM["eps_normalised"], "imagenet_normalised")
_AMD = references.ADVERSARIALMED_DEFENSES
_FIN = references.FINLAYSON_PGD
_FIN_EPS = references.eps_to_pixels(_FIN["eps_minus1_1"], "minus1_1")
_HIR = references.HIRANO_UAP
_MIN = references.MINAGI_NATURAL_UAP
_CLEAN_AM = next(r for r in references.CLEAN if r["study"] == "adversarialmed")

_AM_SETTING = (f"{_AM['setting']['data']}, {_AM['setting']['size']} px, {_AM['setting']['model']} from "
               f"{_AM['setting']['init']}; eps {_AM['eps_normalised']:g} ImageNet-normalised = {_AM_EPS:.4f} "
               f"= {_AM_EPS * 255:.2f}/255")
_FIN_SETTING = (f"{_FIN['setting']['model']} from {_FIN['setting']['init']}, {_FIN['setting']['size']} px; targeted "
                f"PGD, eps {_FIN['eps_minus1_1']:g} in [-1, 1] = {_FIN_EPS * 255:.2f}/255, {_FIN['steps']} steps")
_MIN_SETTING = f"{_MIN['task']} and the study's other tasks, {_MIN['resolution']} px; UAPs from ImageNet photos"
_HIR_SETTING = (f"seven ImageNet-transfer architectures, {_HIR['resolution']} px; iterative UAP (FGSM inner step "
                f"{_HIR['step']:g}, <= {_HIR['max_passes']} passes), zeta {max(_HIR['zetas']):.0%} of the mean "
                f"image norm")

_AM_CITE = "seed text (AdversarialMed README, seeds/000)"
_FIN_PAPER = (f"{references.STUDIES['finlayson']['cite']}: not in the seed text (slides); the figures are the "
              "paper's, as BRIEF.md gives them")

CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        1, "adversarialmed", SEEDS["adversarialmed"],
        "By applying the FGSM, the test accuracy and AUC score of PneuNet will plunge from 0.9547 and 0.9910 down "
        "to 0.0703 and 0.0047 respectively",
        _AM_CITE, "Clean PneuNet accuracy and AUC", _AM_SETTING + "; Kaggle test folder",
        "clean test accuracy and AUC of the profile's MobileNet fine-tuned on the Kermany images",
        (("accuracy", Rule("equivalent", _CLEAN_AM["accuracy"], FIGURE_MARGIN)),
         ("AUC", Rule("equivalent", _CLEAN_AM["auc"], FIGURE_MARGIN))),
        "one model (the study's task)", "the claim is about one model on one task",
        "no attack: one setting", recipe="a MobileNet at the profile's resolution, not DenseNet-121 from CheXNet"),
    ClaimSpec(
        2, "adversarialmed", SEEDS["adversarialmed"],
        "By applying the FGSM, the test accuracy and AUC score of PneuNet will plunge from 0.9547 and 0.9910 down "
        "to 0.0703 and 0.0047 respectively",
        _AM_CITE, f"FGSM at eps {_AM['eps_normalised']:g} (normalised) drops accuracy and AUC",
        _AM_SETTING + "; FGSM, one step", "test accuracy and AUC under the attack, at the study's eps in pixels",
        (("accuracy", Rule("equivalent", _AM_ROWS["fgsm"]["accuracy"], ATTACK_MARGIN, EFFECT, True)),
         ("AUC", Rule("equivalent", _AM_ROWS["fgsm"]["auc"], ATTACK_MARGIN, EFFECT, True))),
        "one model", "the claim is about one model on one task",
        "the lowest accuracy (AUC) of the study's four attacks at the same eps: the vulnerability is at least "
        "what FGSM shows",
        strongest_rules=(("accuracy", Rule("below", _AM_ROWS["fgsm"]["accuracy"] + ATTACK_MARGIN, ATTACK_MARGIN,
                                           EFFECT, True)),
                         ("AUC", Rule("below", _AM_ROWS["fgsm"]["auc"] + ATTACK_MARGIN, ATTACK_MARGIN, EFFECT, True)))),
    ClaimSpec(
        3, "adversarialmed", SEEDS["adversarialmed"],
        "while both metrics will drop down to 0 when applying any iterative based attacks",
        _AM_CITE, "The iterative attacks (I-FGSM, PGD, MI-FGSM) drive accuracy and AUC to 0",
        _AM_SETTING + f"; I-FGSM, PGD, MI-FGSM, {_AM['steps']} iterations of step {_AM['step_normalised']:g} "
                      "normalised (their adversarial training's; the README gives no attack step)",
        "the highest accuracy (AUC) over the three iterative attacks",
        (("accuracy", Rule("below", ABOUT, ATTACK_MARGIN, EFFECT, True)),
         ("AUC", Rule("below", ABOUT, ATTACK_MARGIN, EFFECT, True))),
        "the weakest of the three attacks (highest accuracy)", "'any iterative attack' holds only if the weakest "
        "one does", "the lowest of the three: the model is broken by at least one",
        text_vs_code="the README gives no step size or iteration count for the attacks; the book uses their "
                     "adversarial training's (step 0.005 normalised, 10 iterations)"),
    ClaimSpec(
        4, "adversarialmed", SEEDS["adversarialmed"],
        "We suggest that the adversarial learning provides our model with the best protection from various "
        "adversarial attacks (AUC>0.95) while maintains a relative high performance (AUC≈0.97) on the clean data "
        "at the same time.",
        _AM_CITE, f"Adversarial training keeps AUC > {_AMD['at_robust_auc_min']} under attack and about "
                  f"{_AMD['at_clean_auc']} clean",
        _AM_SETTING + "; their repository's recipe: loss 0.7 clean + 0.3 I-FGSM, eps 0.02, step 0.005 normalised, "
                      "10 iterations, labels from the model's predictions",
        "AUC under attack (at the study's eps) and clean AUC of the adversarially trained model",
        (("AUC attacked", Rule("above", _AMD["at_robust_auc_min"], ATTACK_MARGIN, EFFECT, False)),
         ("AUC clean", Rule("equivalent", _AMD["at_clean_auc"], FIGURE_MARGIN))),
        "the task with the lowest attacked AUC", "'various attacks' and 'the best protection' must hold on every "
                                                  "task the profile defends",
        "the adaptive attacker (knows the defense; chapter 7's worst case)",
        text_vs_code="the text names no recipe; the 10-step I-FGSM recipe is their repository's, and the text's "
                     "one-step FGSM training is claim 13",
        recipe="trained for the profile's epochs with early stopping on robust validation accuracy"),
    ClaimSpec(
        5, "adversarialmed", SEEDS["adversarialmed"],
        "Moreover, we further analyzed the performance of different type of defense approaches, which includes "
        "JPEG compression, adversarial learning, and VAE denoising.",
        "seed text names the defenses and calls adversarial learning the best; it gives no figure for JPEG or "
        "the VAE: 'protects partly' is the book's reading",
        "JPEG compression and VAE denoising protect partly",
        f"JPEG quality {_AMD['jpeg_quality']}; patch VAE denoiser; eps {_AMD['attack_eps_normalised']:g} normalised",
        "robust accuracy gain of the defended over the undefended model at the same eps",
        (("gain", Rule("above", PARTIAL_GAIN, 0.0)),),
        "the defense and task with the smallest gain", "'protect' must hold for each defense the study names",
        "the adaptive attacker (BPDA / end-to-end through the defense)"),
    ClaimSpec(
        6, "finlayson", SEEDS["finlayson"],
        "Implemented human-imperceptible (PGD because they trained the model themselves) and patch attacks",
        _FIN_PAPER, f"Targeted PGD at eps {_FIN['eps_minus1_1']:g} in [-1, 1] drives accuracy to about 0 on all "
                    "three tasks", _FIN_SETTING, "test accuracy under targeted PGD",
        (("accuracy", Rule("below", ABOUT, ATTACK_MARGIN, EFFECT, True)),),
        "the highest accuracy over tasks and models", "'on all three tasks' holds only where the weakest case does",
        "the study's attack is the strongest this book runs at this eps (chapter 2's ensemble runs on its own grid)"),
    ClaimSpec(
        7, "finlayson", SEEDS["finlayson"],
        "if we know the architecture, train our own and then we have a gradient (black box)",
        "seed text names the threat model; 'black-box attacks still succeed' is the paper's finding, without a "
        "figure in our sources (BRIEF.md); success = more than half pushed to the other class is the book's reading",
        "Black-box attacks crafted on a separately trained model still succeed",
        _FIN_SETTING + "; crafted on a separately trained surrogate",
        "share of test images the target gives the other class",
        (("to the other class", Rule("above", BLACKBOX_SUCCESS, ATTACK_MARGIN, EFFECT, False)),),
        "the task with the lowest share", "the finding is stated for every task",
        "the most successful surrogate per task (another seed, or disjoint data)"),
    ClaimSpec(
        8, "finlayson", SEEDS["finlayson"],
        "Universal, we produce one patch that is used as an attack on any scene",
        _FIN_PAPER + "; rotation 'up to about 20 degree' in the text, 22.5 degrees in their code (the book uses "
                     "the code's)",
        "The adversarial patch drives accuracy to about 0 white-box and low black-box; a natural patch keeps it",
        "ResNet-50, 224 px; circular patch, scale 0.3-1.5, rotation up to 22.5 degrees, evaluated at scale 0.4",
        "test accuracy with the patch (white-box, black-box) and with a natural patch",
        (("white-box", Rule("below", ABOUT, ATTACK_MARGIN, EFFECT, True)),
         ("black-box", Rule("below", max(r["black_acc"] for r in references.FINLAYSON_PATCH) + ATTACK_MARGIN,
                            ATTACK_MARGIN, EFFECT, True)),
         ("natural drop", Rule("below", EFFECT, ATTACK_MARGIN))),
        "the highest accuracy over tasks (the largest natural-patch drop)", "the study's table has every task",
        "the study's patch is the strongest patch the book trains", text_vs_code="rotation: text 20, code 22.5"),
    ClaimSpec(
        9, "hirano", SEEDS["hirano"],
        "The almost imperceptible UAPs achieved > 80% success rates for nontargeted and targeted attacks. The "
        "vulnerability to UAPs depended very little on the model architecture.",
        "seed text (Hirano et al. 2021 abstract)", "Non-targeted UAPs reach > 80 % fooling rate, almost independent "
                                                   "of architecture", _HIR_SETTING,
        "fooling rate of each non-targeted UAP on held-out images; spread across architectures",
        (("fooling rate", Rule("above", _HIR["claim_success_rate"], ATTACK_MARGIN, EFFECT, False)),
         ("architecture spread", Rule("below", ARCHITECTURE_SPREAD, ATTACK_MARGIN))),
        "the median over the profile's UAPs (tasks x models x norms), interval by bootstrap over the UAPs",
        "the claim is about UAPs in general ('> 80 %' across their grid), not the worst one",
        "the study's algorithm run to convergence is the strongest UAP the book builds",
        text_vs_code="the second task is 'referable diabetic retinopathy' in the text and OCT in their code; the "
                     "book runs the fundus task"),
    ClaimSpec(
        10, "hirano", SEEDS["hirano"],
        "The almost imperceptible UAPs achieved > 80% success rates for nontargeted and targeted attacks.",
        "seed text; the random control is the paper's (BRIEF.md)", "Targeted UAPs reach > 80 % success, far above "
                                                                   "random controls", _HIR_SETTING + "; targeted",
        "share of all held-out images classified as the target; the same for a random perturbation of equal norm",
        (("success", Rule("above", _HIR["claim_success_rate"], ATTACK_MARGIN, EFFECT, False)),
         ("success - random", Rule("above", EFFECT, ATTACK_MARGIN, EFFECT, False))),
        "the median over targeted UAPs, and the median of each UAP's excess over its random control (bootstrap "
        "over UAPs)", "as claim 9; a random perturbation also sends the target class's own images to the target, "
        "so the control is compared UAP by UAP", "the study's algorithm run to convergence"),
    ClaimSpec(
        11, "minagi", SEEDS["minagi"],
        "The performance of UAPs from natural images was significantly higher than that of random controls, "
        "although slightly lower than that of UAPs from training images.",
        f"seed text; the logged case ({_MIN['task']}, {_MIN['arch']}, {_MIN['norm']}, zeta {_MIN['zeta']:.0%}: "
        f"{_MIN['fooling_rate']} vs random {_MIN['random_fooling_rate']}) from BRIEF.md",
        "UAPs from natural photos fool transfer-learned models far more than random controls, less than medical "
        "UAPs; scratch models less", f"{_MIN['task']}, {_MIN['arch']}, {_MIN['resolution']} px, {_MIN['norm']}, "
                                     f"zeta {_MIN['zeta']:.0%}; UAP from ImageNet photos",
        "fooling rate on held-out medical images of the photo UAP, a random control, the medical UAP",
        (("photo UAP", Rule("equivalent", _MIN["fooling_rate"], ATTACK_MARGIN, EFFECT, False)),
         ("photo - random", Rule("above", EFFECT, ATTACK_MARGIN, EFFECT, False)),
         ("medical - photo", Rule("above", 0.0, ATTACK_MARGIN)),
         ("fine-tuned - scratch", Rule("above", 0.0, ATTACK_MARGIN))),
        "the study's logged case (one task, one model)", "the study logs one case",
        "the study's algorithm run to convergence", text_vs_code="'significantly higher' is tested as an excess "
                                                                 "of at least the registry's effect"),
    ClaimSpec(
        12, "hirano", SEEDS["hirano"],
        "Moreover, we discovered that adversarial retraining, which is known to be an effective method for "
        "adversarial defenses, increased DNNs’ robustness against UAPs in only very few cases.",
        "seed text; the retraining schedule (rounds, UAPs per round, share perturbed) is the paper's Methods, "
        "not in the seed text", "Adversarial retraining raises robustness against UAPs in only very few cases",
        f"{references.HIRANO_RETRAINING['rounds']} rounds of retraining on UAP-perturbed images",
        "share of retrained models whose fresh-UAP fooling rate fell by at least the chapter's threshold",
        (("share helped", Rule("below", FEW_CASES, ATTACK_MARGIN)), ("some helped", Rule("above", 0.0, 0.0))),
        "share over the retrained models (Wilson interval over them)", "'very few cases' is a share of cases",
        "the study's retraining"),
    ClaimSpec(
        13, "adversarialmed", SEEDS["adversarialmed"],
        "Involving with adversarial loss in training, even with a one-step adversarial method (FGSM), would "
        "significantly improve the robustness against various types of attacks.",
        _AM_CITE, "One-step (FGSM) adversarial training significantly improves robustness",
        _AM_SETTING + "; adversarial loss with one-step FGSM examples",
        "robust accuracy gain of FGSM-trained over the undefended model under the adaptive attacker",
        (("gain", Rule("above", EFFECT, ATTACK_MARGIN)),),
        "the task with the smallest gain", "'various types of attacks' must hold on every task",
        "the adaptive attacker", text_vs_code="their code trains with 10-step I-FGSM (claim 4); the text's one-step "
                                              "claim is tested on its own"),
    ClaimSpec(
        14, "adversarialmed", SEEDS["adversarialmed"],
        "The adversarial loss provides extra regularization power to the training process that would be "
        "beneficial in preventing overfitting, especially when the tasks don’t have sufficient amount of data for "
        "the model to learn from.",
        _AM_CITE, "Adversarial loss regularises training when data are scarce",
        _AM_SETTING + "; training sets shrunk", "clean test AUC of adversarial minus standard training at a small "
                                                "training fraction",
        (("AUC gain", Rule("above", 0.0, ATTACK_MARGIN)),),
        "the smallest training fraction the profile runs", "the claim is about scarce data", "not an attack"),
    ClaimSpec(
        15, "hirano", SEEDS["hirano"],
        "The almost imperceptible UAPs achieved > 80% success rates for nontargeted and targeted attacks.",
        "the book's reading: the seed text gives no measure of perceptibility", "The UAPs are almost imperceptible",
        _HIR_SETTING, "median SSIM of a held-out image with the UAP against the clean one, per UAP at the largest "
                      "zeta (chapter 3)",
        (("SSIM", Rule("above", IMPERCEPTIBLE_SSIM, FIGURE_MARGIN)),),
        "the median over the profile's UAPs at the largest zeta (tasks x models x norms x attacks), interval by "
        "bootstrap over the UAPs", "the sentence calls the UAPs in general almost imperceptible, as claim 9's rate",
        "the UAPs are the ones claims 9 and 10 judge: there is no stronger setting",
        text_vs_code="the code saves the UAPs and example images; perceptibility is not measured there"),
    ClaimSpec(
        16, "minagi", SEEDS["minagi"],
        "UAPs from natural images are useful for both non-targeted and targeted attacks.",
        "seed text (Minagi et al. 2022 abstract); the text gives no targeted figure",
        "Targeted UAPs from photos send medical images to the target class far more than a random control",
        _MIN_SETTING + "; targeted",
        "share of all held-out medical images classified as the target with the photo UAP, minus the same share "
        "with a random perturbation of equal norm, per UAP (chapter 4)",
        (("success - random", Rule("above", EFFECT, ATTACK_MARGIN, EFFECT, False)),),
        "the median over the profile's targeted photo UAPs (tasks x models x norms x targets), interval by "
        "bootstrap over the UAPs", "'useful for targeted attacks' is said of photo UAPs in general, as claim 10",
        "the study's algorithm run to convergence", text_vs_code="the non-targeted half is claim 11"),
    ClaimSpec(
        17, "minagi", SEEDS["minagi"],
        "Vulnerability to UAPs from natural images was observed between different natural image datasets and "
        "between different model architectures.",
        "seed text (Minagi et al. 2022 abstract)",
        "Photo UAPs from either of two photo collections, and applied to other architectures, still fool the models",
        _MIN_SETTING + "; ImageNet and Open Images photos; UAPs transferred between architectures",
        "fooling rate on held-out medical images of the weaker of two disjoint photo sources' UAPs minus the random "
        "control (same model, norm, zeta); fooling rate of a photo UAP applied to another model of its task",
        (("weaker source - random", Rule("above", EFFECT, ATTACK_MARGIN, EFFECT, False)),
         ("other architecture", Rule("above", EFFECT, ATTACK_MARGIN, EFFECT, False))),
        "the median over settings (task x model x norm at the largest zeta) of the weaker source's excess, and the "
        "median over the transfer matrices' off-diagonal cells; intervals by bootstrap over them",
        "the sentence states the finding in general, not for the worst case",
        "the study's algorithm run to convergence",
        text_vs_code="the study's second photo collection is Open Images, which the mirror lacks: the book splits "
                     "its ImageNet photos into animal and other classes (no photo, no class in common)"),
    ClaimSpec(
        18, "minagi", SEEDS["minagi"],
        "Model training from random initialization (without transfer learning) reduced the performance of UAPs "
        "from natural images; however, it did not completely avoid vulnerability to UAPs.",
        "seed text (Minagi et al. 2022 abstract)",
        "Models trained from scratch are fooled less by photo UAPs, but more than by a random control",
        _MIN_SETTING + "; the same architecture fine-tuned and from scratch",
        "fooling rate on held-out medical images of the photo UAP: fine-tuned minus scratch model (same architecture, "
        "task, norm, zeta), and the scratch model's minus its random control",
        (("fine-tuned - scratch", Rule("above", 0.0, ATTACK_MARGIN)),
         ("scratch - random", Rule("above", 0.0, ATTACK_MARGIN))),
        "the median over the settings with both initialisations (task x norm x zeta), interval by bootstrap over "
        "them", "the sentence compares the two initialisations in general; claim 11 holds the logged case",
        "the study's algorithm run to convergence"),
    ClaimSpec(
        19, "finlayson", SEEDS["finlayson"],
        "otherwise we have to estimate the gradient, depends on what the model outputs...a probability "
        "distribution or just a label.",
        "seed text names the threat model (an attacker who sees the predicted label only); it gives no figure: "
        "'still fools the model' as a share above the registry's effect is the book's reading",
        "An attacker who sees only the predicted label can still fool the model within an L-inf budget",
        "query access to the target, its predicted label only; the black-box chapter's L-inf budget and query "
        "budget",
        "share of the target's correctly classified images a label-only attack (HopSkipJump, Chen et al. 2020) "
        "fools within the budget (chapter 5)",
        (("label-only success", Rule("above", EFFECT, ATTACK_MARGIN, EFFECT, False)),),
        "pooled over the tasks' attacked images (Wilson interval over images)",
        "the sentence names the threat model, not a task",
        "the label-only attack at the chapter's query budget",
        text_vs_code="the seed text is slides; the label-only threat model is stated, not measured, there"),
)

#: Which way the errors behind each claim's number go (issue 24: missed diagnoses, a diseased image
#: sent to no disease, against false alarms, the reverse). Not sealed: it describes the measure, it
#: does not decide a verdict. Chapters 2 and 5 split the white-box and black-box numbers by direction.
DIRECTIONS: dict[int, str] = {
    1: "no attack: clean accuracy and AUC count every error, either way",
    2: "both: a non-targeted attack; accuracy counts missed diagnoses and false alarms alike",
    3: "both: non-targeted attacks",
    4: "both: AUC under non-targeted attacks",
    5: "both: robust accuracy under non-targeted attacks",
    6: "both: each image is pushed to the other class, so diseased images become missed diagnoses and "
       "normal ones false alarms (chapter 2 splits them)",
    7: "both: targeted to the other class, as claim 6 (chapter 5 splits them)",
    8: "both: each image gets the patch of the other class",
    9: "both: non-targeted UAPs",
    10: "one per UAP: toward the normal class, missed diagnoses; toward the disease, false alarms",
    11: "both: non-targeted UAPs from photos",
    12: "both: non-targeted UAPs before and after retraining",
    13: "both: robust accuracy under non-targeted attacks",
    14: "no attack: clean AUC",
    15: "none: a property of the perturbation, not of the errors",
    16: "one per UAP: toward the normal class, missed diagnoses; toward the disease, false alarms",
    17: "both: non-targeted UAPs from photos",
    18: "both: non-targeted UAPs from photos",
    19: "both: a non-targeted label-only attack",
}

#: Every claim by number.
BY_NUMBER: dict[int, ClaimSpec] = {c.number: c for c in CLAIMS}


def _rules(rules: tuple[tuple[str, Rule], ...]) -> list:
    return [[name, r.kind, round(r.figure, 6), round(r.margin, 6), None if math.isnan(r.effect) else round(r.effect, 6),
             r.lower_is_effect] for name, r in rules]


def _sealed(c: ClaimSpec) -> dict:
    """What the seal covers: the quote, aggregation and rules (not the wording of explanations)."""
    return {"number": c.number, "study": c.study, "quote": c.quote, "aggregation": c.aggregation,
            "rules": _rules(c.rules), "strongest_rules": _rules(c.strongest_rules)}


def fingerprint() -> str:
    """16 hex digits of the SHA-256 of every claim's quote, aggregation and rules."""
    blob = json.dumps([_sealed(c) for c in CLAIMS], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Change(NamedTuple):
    """One accepted state of the registry: its date, :func:`fingerprint` and why it changed."""

    date: str
    fingerprint: str
    reason: str


#: Every accepted registry, oldest first; the last entry must be :func:`fingerprint`.
CHANGELOG: tuple[Change, ...] = (
    Change("2026-12-04", "73bae051ec145e3c", "first sealed registry: TOST and bound rules with margins replace the "
                                    "interval-covers rule; claims 13 (one-step FGSM training) and 14 "
                                    "(regularisation) added from AdversarialMed's text"),
    Change("2026-12-04", "53697359ac7595db", "claim 15 (the UAPs are almost imperceptible: median SSIM >= 0.95) added "
                                    "from Hirano et al.'s abstract, with the perceptibility chapter 3 now measures"),
    Change("2026-12-04", "ab8aa1a4262dd1d0", "claims 16-18 added from Minagi et al.'s abstract (targeted photo UAPs; "
                                    "two photo sources and other architectures; scratch models less but not "
                                    "immune), with the experiments chapter 4 now runs; no earlier rule changed"),
    Change("2026-12-04", "f5529e10d96343f8", "claim 19 added from Finlayson et al.'s slides (a label-only attacker "
                                    "can still fool the model), with chapter 5's HopSkipJump; no earlier rule "
                                    "changed"),
)


def rules_table() -> pd.DataFrame:
    """One row per claim, setting and part: the rule, the study's figure or bound, the margin and
    the effect "same direction" needs (for the Methods chapter)."""
    rows = []
    for c in CLAIMS:
        for setting in ("study", "strongest"):
            if setting == "strongest" and not c.strongest_rules:
                continue
            for name, r in c.rules_at(setting):
                rows.append({"no.": c.number, "setting": "study's" if setting == "study" else "strongest",
                             "part": name, "rule": r.kind, "figure or bound": r.figure, "margin": r.margin,
                             "same direction needs": r.effect})
    return pd.DataFrame(rows)


__all__ = ["ABOUT", "ARCHITECTURE_SPREAD", "ATTACK_MARGIN", "BLACKBOX_SUCCESS", "BY_NUMBER", "CHANGELOG", "CLAIMS",
           "Change", "ClaimSpec", "EFFECT", "FEW_CASES", "FIGURE_MARGIN", "Rule", "SEEDS", "fingerprint",
           "rules_table"]
