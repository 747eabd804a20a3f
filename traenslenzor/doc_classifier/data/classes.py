"""The 16 RVL-CDIP document classes, in the order of the dataset's integer labels.

RVL-CDIP (Harley et al., 2015, "Evaluation of Deep Convolutional Nets for Document Image Classification and
Retrieval") labels each page 0-15; the label files and the Hugging Face copy both use this order, so the index of a
name here *is* its label everywhere in this package (synthetic data included).
"""

from __future__ import annotations

RVL_CDIP_CLASSES: tuple[str, ...] = (
    "letter",
    "form",
    "email",
    "handwritten",
    "advertisement",
    "scientific report",
    "scientific publication",
    "specification",
    "file folder",
    "news article",
    "budget",
    "invoice",
    "presentation",
    "questionnaire",
    "resume",
    "memo",
)

NUM_CLASSES = len(RVL_CDIP_CLASSES)

# Pairs that look alike in the real data too; the synthetic generator keeps them confusable on purpose.
CONFUSABLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("letter", "memo"),
    ("form", "questionnaire"),
    ("scientific report", "scientific publication"),
)


def class_index(name: str) -> int:
    """Label of a class name (e.g. ``"memo"`` -> 15), with the valid names in the error."""
    try:
        return RVL_CDIP_CLASSES.index(name)
    except ValueError:
        raise ValueError(f"unknown RVL-CDIP class {name!r}; valid names: {', '.join(RVL_CDIP_CLASSES)}") from None
