"""The logit part of the distillation loss, fused:

    mean over predicted positions of  alpha_ce · T² · KL(teacher_T ‖ student_T) + alpha_clm · CE

with its gradient computed in the forward pass, a chunk of positions at a time. Written as
autograd ops, the two terms create about a dozen (positions × vocabulary) fp32 tensors per
step; on CPU that made a distillation step 1.6× as long as one with plain cross-entropy (a
2-layer student of a 4-layer teacher, 8k vocabulary, batch 32×128: 1.47 s against 0.90 s, the
teacher's forward in both). Fused, it takes the 0.90 s: no fp32 intermediate outlives a chunk,
and the only saved tensor is the gradient, in the logits' dtype.
"""

from __future__ import annotations

from typing import Any

import torch

from lmforge.hf import IGNORE

# fp32 elements per chunk (8 MB): a chunk's handful of temporaries stay in cache.
CHUNK_ELEMENTS = 1 << 21


class _FusedDistillationLoss(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        student: torch.Tensor,
        teacher: torch.Tensor,
        targets: torch.Tensor,
        temperature: float,
        alpha_ce: float,
        alpha_clm: float,
    ) -> torch.Tensor:
        rows, vocab = student.shape
        predicted = targets != IGNORE
        count = max(int(predicted.sum()), 1)
        total = torch.zeros((), dtype=torch.float32, device=student.device)
        grad = torch.empty_like(student)
        step = max(1, CHUNK_ELEMENTS // vocab)
        # The math is fp32 whatever the logits' dtype, so autocast stays out of it.
        with torch.autocast(student.device.type, enabled=False):
            for start in range(0, rows, step):
                part = slice(start, start + step)
                logits = student[part].to(torch.float32, copy=True)
                log_p = torch.log_softmax(logits, dim=-1)
                log_q = torch.log_softmax(logits.div_(temperature), dim=-1)
                teacher_part = teacher[part].to(torch.float32, copy=True)
                log_t = torch.log_softmax(teacher_part.div_(temperature), dim=-1)
                p_t = log_t.exp()
                kl = (p_t * (log_t - log_q)).sum(-1)
                target = targets[part].clamp(min=0).unsqueeze(-1)
                ce = -log_p.gather(-1, target).squeeze(-1)
                weight = predicted[part].to(torch.float32)
                total += (weight * (alpha_ce * temperature**2 * kl + alpha_clm * ce)).sum()
                # d/dz of T²·KL is T·(softmax(z/T) − p_t); of CE, softmax(z) − onehot(target).
                chunk_grad = log_q.exp_().sub_(p_t).mul_(alpha_ce * temperature)
                chunk_grad.add_(log_p.exp_(), alpha=alpha_clm)
                chunk_grad.scatter_add_(-1, target, torch.full_like(p_t[:, :1], -alpha_clm))
                grad[part] = chunk_grad.mul_((weight / count).unsqueeze(-1))
        ctx.save_for_backward(grad)
        return total / count

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype), None, None, None, None, None


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float,
    alpha_ce: float,
    alpha_clm: float,
) -> torch.Tensor:
    """The loss over (batch, seq, vocab) logits; position t predicts labels[:, t + 1], and a
    position whose target is IGNORE (or the last one, which has none) is not scored."""
    batch, seq, vocab = student_logits.shape
    targets = torch.full_like(labels, IGNORE)
    targets[:, :-1] = labels[:, 1:]
    # reshape is a view of the model's contiguous logits: no (positions × vocab) copy.
    # torch leaves autograd.Function.apply unannotated.
    loss: torch.Tensor = _FusedDistillationLoss.apply(  # type: ignore[no-untyped-call]
        student_logits.reshape(batch * seq, vocab),
        teacher_logits.reshape(batch * seq, vocab).detach(),
        targets.reshape(-1),
        temperature,
        alpha_ce,
        alpha_clm,
    )
    return loss
