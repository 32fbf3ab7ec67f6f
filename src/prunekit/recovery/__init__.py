"""Recovery: train a pruned student back towards its dense teacher, every pruned weight kept at zero.

result = prunekit.recover(student, student_tok, teacher, teacher_tok, RecoveryConfig(train="lora"))
"""

from prunekit.recovery.config import RecoveryConfig
from prunekit.recovery.run import RecoveryResult, recover

__all__ = ["RecoveryConfig", "RecoveryResult", "recover"]
