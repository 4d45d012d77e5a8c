"""Rollouts of a challenger against the champion: sticky assignment, an always-valid verdict, guardrails.

The statistical and routing core of shadow, canary and online A/B rollouts, no serving.
Modules: ``_plan`` (the running rollout as the serving side routes by it), ``_assignment``
(which variant answers a key),
``_service`` (start, share, stop, promote: each step a row of the registry history),
``_status`` (the online comparison per variant, the verdict's path, the periodic check),
``_msprt`` (the vectorised mixture SPRT), ``_sequential`` (the verdict on the primary metric,
fed batch by batch), ``_guardrails`` (error-rate and latency checks), ``_settings`` (the
declared settings).

Which test, and why. People watch a rollout's dashboard every day and stop as soon as it looks
good; a fixed-horizon test (a z-test or t-test repeated at each look) then declares a winner far
more often than its alpha says (in the package's A/A simulations, 50 looks turn a nominal 5 %
into about 30 % of rollouts declared different, 15 to 20 % falsely "better"). The verdict
therefore uses the mixture sequential probability ratio test (mSPRT) with a normal mixing
distribution, from Johari, Koomen, Pekelis & Walsh, "Peeking at A/B Tests" (KDD 2017) and
"Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations Research, 2022), as in
Optimizely's Stats Engine. It gives an always-valid p-value and confidence sequence for the
difference challenger − champion: valid at every look at once, so the verdict ("better", "worse"
or "no difference yet" at alpha, default 0.05) may be read after each batch of labels and acted
on when it changes. Binary metrics (accuracy: per prediction correct or not) are tested as a
difference in proportions, regression errors as a difference in means, both with plug-in
variances (valid asymptotically; a burn-in of 100 labels per variant by default). The mixture's
scale tau is the canvas's minimum uplift on the metric's scale (minimum uplift × the champion's
value), the effect size worth detecting. Guardrails use the same statistic, one-sided, for the
error rate, and compare the challenger's p99 latency with the canvas's budget and with the
champion's.
"""

from workbench.rollouts._assignment import (
    CHALLENGER,
    CHAMPION,
    MODES,
    VARIANTS,
    assign_variant,
    assign_variants,
    assignment_point,
    routing_key,
    traffic_share,
)
from workbench.rollouts._guardrails import (
    BREACH,
    OK,
    SKIPPED,
    WAITING,
    GuardrailCheck,
    GuardrailResult,
    VariantTraffic,
    check_guardrails,
    error_rate_log_ratio,
)
from workbench.rollouts._incremental import RolloutTracker
from workbench.rollouts._plan import (
    BREACHED,
    PROMOTED,
    RUNNING,
    STATUSES,
    STOPPED,
    RolloutPlan,
    active_rollout,
    served_share,
    serving_plan,
)
from workbench.rollouts._sequential import (
    BETTER,
    DIRECTIONS,
    KINDS,
    NO_DIFFERENCE_YET,
    WORSE,
    ArmTotals,
    SequentialPath,
    SequentialState,
    SequentialTest,
    SequentialVerdict,
    mixing_scale,
)
from workbench.rollouts._service import (
    DEFAULT_ONLINE_SHARE,
    HISTORY_ALIAS,
    ROLLOUT_DEPLOYMENT_MODES,
    STEP_ACTIONS,
    key_columns,
    list_rollouts,
    online_target,
    promote_rollout,
    rollout_dict,
    rollout_history,
    set_share,
    share_text,
    start_online_step,
    start_rollout,
    stop_rollout,
    tested_quantity,
)
from workbench.rollouts._settings import ROLLOUT_PARAMS, validate_rollout
from workbench.rollouts._status import (
    GUARDRAIL_CHECK,
    AgreementPoint,
    PathPoint,
    RolloutCheck,
    RolloutStatus,
    VariantStats,
    check_rollout,
    rollout_status,
)

__all__ = [
    "BETTER",
    "BREACH",
    "BREACHED",
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_ONLINE_SHARE",
    "DIRECTIONS",
    "GUARDRAIL_CHECK",
    "HISTORY_ALIAS",
    "KINDS",
    "MODES",
    "NO_DIFFERENCE_YET",
    "OK",
    "PROMOTED",
    "ROLLOUT_DEPLOYMENT_MODES",
    "ROLLOUT_PARAMS",
    "RUNNING",
    "SKIPPED",
    "STATUSES",
    "STEP_ACTIONS",
    "STOPPED",
    "VARIANTS",
    "WAITING",
    "WORSE",
    "AgreementPoint",
    "ArmTotals",
    "GuardrailCheck",
    "GuardrailResult",
    "PathPoint",
    "RolloutCheck",
    "RolloutPlan",
    "RolloutStatus",
    "RolloutTracker",
    "SequentialPath",
    "SequentialState",
    "SequentialTest",
    "SequentialVerdict",
    "VariantStats",
    "VariantTraffic",
    "active_rollout",
    "assign_variant",
    "assign_variants",
    "assignment_point",
    "check_guardrails",
    "check_rollout",
    "error_rate_log_ratio",
    "key_columns",
    "list_rollouts",
    "mixing_scale",
    "online_target",
    "promote_rollout",
    "rollout_dict",
    "rollout_history",
    "rollout_status",
    "routing_key",
    "served_share",
    "serving_plan",
    "set_share",
    "share_text",
    "start_online_step",
    "start_rollout",
    "stop_rollout",
    "tested_quantity",
    "traffic_share",
    "validate_rollout",
]
