"""Parameter constraints declared as data, checked in one place with one message format.

In the spirit of scikit-learn's ``_param_validation``: a setting is declared with a
:class:`Param` (its constraint, default and hint), and :func:`validate_params` checks a whole
mapping against such a declaration. Every refusal is an :class:`~workbench.errors.InvalidInput`
whose ``field`` is the parameter and whose message names the parameter, the allowed values and
the value received, for example ``n_trials must be an integer in [1, 200]; got 2.5.``

One behaviour everywhere: an integer parameter takes ints, integral floats (``3.0``, as JSON
and number inputs send them) and integer strings (``"3"``, as a command line sends them); it
refuses ``True``/``False``, ``2.5`` and ``"2.5"``. A real parameter refuses booleans, NaN and
infinities.
"""

from workbench.validation._constraints import (
    REQUIRED,
    Constraint,
    Integer,
    Options,
    Param,
    Real,
    Text,
    check_param,
    validate_params,
    values_of,
)
from workbench.validation._constraints import _Refused as Refused  # raised by a custom constraint's coerce

__all__ = [
    "REQUIRED",
    "Constraint",
    "Integer",
    "Options",
    "Param",
    "Real",
    "Refused",
    "Text",
    "check_param",
    "validate_params",
    "values_of",
]
