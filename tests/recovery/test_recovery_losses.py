import math

import torch

from prunekit.recovery.losses import kl_sum, teacher_log_probs


def test_vocabulary_mapped_kl_equals_brute_force():
    torch.manual_seed(0)
    teacher_logits = torch.randn(2, 3, 10)
    kept = torch.tensor([7, 0, 3, 9])  # student id i is teacher id kept[i]
    student_logits = torch.randn(2, 3, 4)
    weights = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]])
    got = kl_sum(student_logits, teacher_log_probs(teacher_logits, kept), weights)
    expected = 0.0
    for b in range(2):
        for t in range(3):
            tz = [math.exp(teacher_logits[b, t, int(k)]) for k in kept]
            sz = [math.exp(student_logits[b, t, i]) for i in range(4)]
            p = [v / sum(tz) for v in tz]
            q = [v / sum(sz) for v in sz]
            kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
            expected += float(weights[b, t]) * kl
    assert abs(float(got) - expected) < 1e-5


def test_kl_is_zero_for_identical_distributions_and_ignores_padded_student_rows():
    logits = torch.randn(1, 4, 6)
    padded = torch.cat([logits, torch.full((1, 4, 2), 50.0)], -1)  # rows past the vocabulary
    got = kl_sum(padded, teacher_log_probs(logits, None), torch.ones(1, 4))
    assert abs(float(got)) < 1e-5
