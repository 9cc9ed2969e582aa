"""Classification tasks: a dataset, an optional label view, what the studies called it, and
which classes are the disease.

A task name is what chapters, profiles and checkpoints use; the data layer turns it
into images and labels (``advmed.data.load_task``). ``disease`` names the classes a clinician
acts on (pneumonia, melanoma, referable retinopathy, a malignant lesion): an attack that moves
an image out of them is a **missed diagnosis**, one that moves an image into them a **false
alarm** (Finlayson et al. 2019: "Either sent for unnecessary treatment, or miss required
treatment"), see :func:`advmed.metrics.harm_split`. For HAM10000's seven diagnoses the
malignant ones are the disease (melanoma, basal cell carcinoma, actinic keratosis /
intraepithelial carcinoma); for the five retinopathy grades, grades 2-4 (referable).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str  # key of advmed.data.DATASETS
    view: str | None  # label view of that dataset (None: its own labels)
    title: str
    disease: tuple[str, ...] = ()  # class names that are the disease (the other classes: no disease)

    def disease_ids(self, classes: tuple[str, ...]) -> tuple[int, ...]:
        """The label ids of :attr:`disease` among ``classes`` (the task's class names, in label order)."""
        missing = sorted(set(self.disease) - set(classes))
        if missing:
            raise ValueError(f"task {self.name!r}: disease classes {missing} are not among its classes {classes}")
        return tuple(i for i, c in enumerate(classes) if c in self.disease)


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("pneumonia_cxr", "kermany_cxr", None,
             "Pneumonia vs normal, paediatric chest X-ray (Kermany)", ("pneumonia",)),
        Task("melanoma_derm", "ham10000", "mel_vs_nv",
             "Melanoma vs nevus, dermoscopy (HAM10000)", ("melanoma",)),
        Task("skin7_derm", "ham10000", None,
             "Seven skin lesion diagnoses, dermoscopy (HAM10000)", ("mel", "bcc", "akiec")),
        Task("referable_dr", "retinamnist", "referable",
             "Referable diabetic retinopathy (grade >= 2), fundus (RetinaMNIST)", ("referable",)),
        Task("retina5", "retinamnist", None,
             "Five diabetic retinopathy grades, fundus (RetinaMNIST)", ("2", "3", "4")),
        Task("pneumoniamnist", "pneumoniamnist", None,
             "Pneumonia vs normal, chest X-ray at 28 px (PneumoniaMNIST)", ("pneumonia",)),
        Task("breastmnist", "breastmnist", None,
             "Malignant vs normal/benign, breast ultrasound at 28 px (BreastMNIST)", ("malignant",)),
    ]
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}") from None
