"""The two constraints training adds to :mod:`workbench.validation`: a bounded count and a list of families.

Both keep validation's behaviour and message format (``"<name> must be <allowed>; got <value>."``);
:class:`WholeNumber` only words its bounds the way the tuning and retraining messages always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.errors import InvalidInput
from workbench.validation import Integer


@dataclass(frozen=True)
class WholeNumber(Integer):
    """An :class:`~workbench.validation.Integer` in ``[low, high]``, described as "between low and high"."""

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"between {self.low} and {self.high} (a whole number)"
        return super().describe()


@dataclass(frozen=True)
class Families:
    """One or more model family ids, as a list or a comma-separated string; gives a tuple without repeats.

    An empty choice is refused with its own message (there is no value to show); an unknown id
    is refused by :func:`workbench.training.model_families.get_family`, naming the allowed ids.
    """

    field: str = "models"

    def describe(self) -> str:
        from workbench.training.model_families import FAMILY_IDS

        return f"one or more model families among {', '.join(FAMILY_IDS)}"

    def coerce(self, value: Any) -> tuple[str, ...]:
        from workbench.training.model_families import FAMILY_IDS, get_family

        items: Sequence[Any]
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list | tuple):
            items = value
        else:
            raise InvalidInput(f"{self.field} must be {self.describe()}; got {value!r}.", field=self.field)
        if not items:
            raise InvalidInput(
                f"{self.field} is empty: choose at least one model family among {', '.join(FAMILY_IDS)}.",
                field=self.field,
            )
        chosen = tuple(dict.fromkeys(str(item).strip() if isinstance(item, str) else item for item in items))
        for family_id in chosen:
            if not isinstance(family_id, str):
                raise InvalidInput(f"{self.field} must be {self.describe()}; got {value!r}.", field=self.field)
            get_family(family_id)
        return chosen
