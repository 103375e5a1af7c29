"""The fused distillation loss against the same loss written as plain autograd ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmforge.hf import IGNORE
from lmforge.train import distill_loss
from lmforge.train.distill_loss import distillation_loss


def reference(student, teacher, labels, temperature, alpha_ce, alpha_clm):
    predicted = labels[:, 1:] != IGNORE
    student_logp = F.log_softmax(student[:, :-1].float() / temperature, dim=-1)
    teacher_logp = F.log_softmax(teacher[:, :-1].float() / temperature, dim=-1)
    kl = F.kl_div(student_logp, teacher_logp, log_target=True, reduction="none").sum(-1)
    ce = F.cross_entropy(
        student[:, :-1].float().reshape(-1, student.size(-1)),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE,
    )
    return alpha_ce * temperature**2 * kl[predicted].mean() + alpha_clm * ce


def logits_and_labels(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    student = (3 * torch.randn(3, 9, 50, generator=generator)).to(dtype)
    teacher = (3 * torch.randn(3, 9, 50, generator=generator)).to(dtype)
    labels = torch.randint(0, 50, (3, 9), generator=generator)
    labels[:, 0] = IGNORE  # as in every training window
    labels[1, 5:] = IGNORE  # a padded tail
    return student, teacher, labels


@pytest.mark.parametrize(
    ("temperature", "alpha_ce", "alpha_clm"), [(2.0, 0.5, 0.5), (1.0, 1.0, 0.0), (3.0, 0.0, 2.0)]
)
def test_value_and_gradient_match_the_autograd_formula(
    monkeypatch: pytest.MonkeyPatch, temperature: float, alpha_ce: float, alpha_clm: float
) -> None:
    monkeypatch.setattr(distill_loss, "CHUNK_ELEMENTS", 100)  # two positions per chunk
    student, teacher, labels = logits_and_labels(torch.float32)
    fused_input = student.clone().requires_grad_()
    fused = distillation_loss(
        fused_input,
        teacher,
        labels,
        temperature=temperature,
        alpha_ce=alpha_ce,
        alpha_clm=alpha_clm,
    )
    (3 * fused).backward()
    expected_input = student.clone().requires_grad_()
    expected = reference(expected_input, teacher, labels, temperature, alpha_ce, alpha_clm)
    (3 * expected).backward()
    assert fused.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(fused_input.grad, expected_input.grad, rtol=1e-4, atol=1e-7)
    assert torch.equal(fused_input.detach(), student), "the logits are left as they were"


def test_bf16_logits_get_a_bf16_gradient_close_to_fp32() -> None:
    student, teacher, labels = logits_and_labels(torch.bfloat16)
    fused_input = student.clone().requires_grad_()
    distillation_loss(
        fused_input, teacher, labels, temperature=2.0, alpha_ce=0.5, alpha_clm=0.5
    ).backward()
    expected_input = student.float().requires_grad_()
    reference(expected_input, teacher.float(), labels, 2.0, 0.5, 0.5).backward()
    assert fused_input.grad.dtype == torch.bfloat16
    torch.testing.assert_close(fused_input.grad.float(), expected_input.grad, rtol=2e-2, atol=1e-4)
