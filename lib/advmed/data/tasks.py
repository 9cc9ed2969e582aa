"""Classification tasks: a dataset, an optional label view, and what the studies called it.

A task name is what chapters, profiles and checkpoints use; the data layer turns it
into images and labels (``advmed.data.load_task``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str  # key of advmed.data.DATASETS
    view: str | None  # label view of that dataset (None: its own labels)
    title: str


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("pneumonia_cxr", "kermany_cxr", None,
             "Pneumonia vs normal, paediatric chest X-ray (Kermany)"),
        Task("melanoma_derm", "ham10000", "mel_vs_nv",
             "Melanoma vs nevus, dermoscopy (HAM10000)"),
        Task("skin7_derm", "ham10000", None,
             "Seven skin lesion diagnoses, dermoscopy (HAM10000)"),
        Task("referable_dr", "retinamnist", "referable",
             "Referable diabetic retinopathy (grade >= 2), fundus (RetinaMNIST)"),
        Task("retina5", "retinamnist", None,
             "Five diabetic retinopathy grades, fundus (RetinaMNIST)"),
        Task("pneumoniamnist", "pneumoniamnist", None,
             "Pneumonia vs normal, chest X-ray at 28 px (PneumoniaMNIST)"),
        Task("breastmnist", "breastmnist", None,
             "Malignant vs normal/benign, breast ultrasound at 28 px (BreastMNIST)"),
    ]
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}") from None
