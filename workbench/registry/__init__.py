"""Registry: registered model versions, the champion and challenger aliases, promotion history and model cards.

- ``_versions``: the project's registered model, its versions and loading one.
- ``_promotion``: promote / rollback the aliases, and the promotion history.
- ``_compare``: a version against the champion on the project holdout.
- ``_model_card``: the model card of a version, each section fed from one canvas box (``CARD_SOURCES``).
- ``_views``: the Registry page's versions rows and promotion timeline figure.
"""

from workbench.registry._compare import VersionComparison, compare_with_champion
from workbench.registry._model_card import CARD_SOURCES, MODEL_CARD_ARTIFACT, CardSource, log_model_card, model_card
from workbench.registry._promotion import (
    ACTIONS,
    ALIASES,
    MAX_REASON,
    check_reason,
    history,
    promote,
    promotion_dict,
    record_move,
    rollback,
    rollback_target,
)
from workbench.registry._versions import (
    TAG_DATASET_HASH,
    TAG_FLAG,
    VersionInfo,
    aliases,
    get_version,
    input_columns,
    list_versions,
    load_version_model,
    model_name,
    version_threshold,
)
from workbench.registry._views import timeline_figure, versions_rows

__all__ = [
    "ACTIONS",
    "ALIASES",
    "CARD_SOURCES",
    "MAX_REASON",
    "MODEL_CARD_ARTIFACT",
    "TAG_DATASET_HASH",
    "TAG_FLAG",
    "CardSource",
    "VersionComparison",
    "VersionInfo",
    "aliases",
    "check_reason",
    "compare_with_champion",
    "get_version",
    "history",
    "input_columns",
    "list_versions",
    "load_version_model",
    "log_model_card",
    "model_card",
    "model_name",
    "promote",
    "promotion_dict",
    "record_move",
    "rollback",
    "rollback_target",
    "timeline_figure",
    "version_threshold",
    "versions_rows",
]
