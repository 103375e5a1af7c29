"""`lmforge distill`: DistilGPT2's recipe. The student takes evenly spaced teacher blocks (with
the embeddings and final norm copied) or a fresh `--student-config`; the teacher is frozen in
eval mode under no_grad; the loss is

    alpha_ce · T² · KL(teacher_T ‖ student_T) + alpha_clm · CE + alpha_cos · (1 − cos(h_s, h_t))

over the predicted positions (`distill_loss` fuses the two logit terms). Evaluation (and so
best-model selection) uses plain CE, so the numbers compare with `train`'s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Trainer

from lmforge.cards import Lineage, ModelCard
from lmforge.config.train import DistillConfig
from lmforge.errors import ConfigError, ModelError
from lmforge.hf import IGNORE
from lmforge.train.data import lm_data, open_dataset
from lmforge.train.distill_loss import distillation_loss
from lmforge.train.metrics import lm_final_metrics
from lmforge.train.run import RunResult, RunSpec, run_training

log = logging.getLogger(__name__)


def teacher_layers_for(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spaced teacher blocks, first and last included (12 → 6: 0, 2, 4, 7, 9, 11)."""
    return [int(i) for i in np.linspace(0, teacher_layers - 1, student_layers).round()]


def make_student(teacher: Any, layers: int, student_config: str) -> tuple[Any, dict[str, Any]]:
    from transformers import GPT2Config, GPT2LMHeadModel

    if student_config:
        config = GPT2Config.from_json_file(student_config)
        if config.vocab_size != teacher.config.vocab_size:
            raise ConfigError(
                f"student_config: vocab_size {config.vocab_size} differs from the teacher's "
                f"{teacher.config.vocab_size}"
            )
        return GPT2LMHeadModel(config), {"init": "fresh", "config": student_config}
    if layers >= teacher.config.n_layer:
        raise ConfigError(
            f"student_layers: {layers} is not fewer than the teacher's {teacher.config.n_layer}"
        )
    config = teacher.config.to_dict()
    config["n_layer"] = layers
    student = GPT2LMHeadModel(GPT2Config.from_dict(config))
    chosen = teacher_layers_for(teacher.config.n_layer, layers)
    source, target = teacher.transformer, student.transformer
    target.wte.load_state_dict(source.wte.state_dict())
    target.wpe.load_state_dict(source.wpe.state_dict())
    target.ln_f.load_state_dict(source.ln_f.state_dict())
    for student_index, teacher_index in enumerate(chosen):
        target.h[student_index].load_state_dict(source.h[teacher_index].state_dict())
    student.tie_weights()
    return student, {"init": "teacher_layers", "teacher_layers": chosen}


class DistillTrainer(Trainer):
    """A Trainer whose training loss is the distillation loss."""

    # compute_loss returns a mean over its micro-batch, so the Trainer must divide it by the
    # accumulation steps (it would assume a sum over the accumulated batches otherwise).
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args: Any,
        teacher: Any,
        temperature: float,
        alpha_ce: float,
        alpha_clm: float,
        alpha_cos: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)
        self.temperature = temperature
        self.alpha_ce, self.alpha_clm, self.alpha_cos = alpha_ce, alpha_clm, alpha_cos

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if not model.training:
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        want_hidden = self.alpha_cos > 0
        # No labels: the model's own cross-entropy is part of the fused loss below.
        outputs = model(input_ids=inputs["input_ids"], output_hidden_states=want_hidden)
        with torch.no_grad():
            teacher_out = self.teacher(
                input_ids=inputs["input_ids"], output_hidden_states=want_hidden
            )
        loss = distillation_loss(
            outputs.logits,
            teacher_out.logits,
            inputs["labels"],
            temperature=self.temperature,
            alpha_ce=self.alpha_ce,
            alpha_clm=self.alpha_clm,
        )
        if want_hidden:
            # Position t predicts token t+1, so the last position is never scored.
            predicted = inputs["labels"][:, 1:] != IGNORE
            cosine = F.cosine_similarity(
                outputs.hidden_states[-1][:, :-1], teacher_out.hidden_states[-1][:, :-1], dim=-1
            )
            loss = loss + self.alpha_cos * (1 - cosine[predicted]).mean()
        return (loss, outputs) if return_outputs else loss


def distill(cfg: DistillConfig) -> RunResult:
    from transformers import set_seed

    from lmforge.hf import check_same_vocabulary, wrap_tokenizer
    from lmforge.registry.resolve import open_model

    set_seed(cfg.seed)
    teacher, tokenizer, card = open_model(cfg.teacher, unverified=cfg.unverified)
    dataset = open_dataset(Path(cfg.data))
    check_same_vocabulary(tokenizer, wrap_tokenizer(dataset.tokenizer_file), str(dataset.directory))
    layers = cfg.student_layers or max(1, teacher.config.n_layer // 2)
    student, how = make_student(teacher, layers, cfg.student_config)
    if student.config.n_positions < teacher.config.n_positions and not cfg.context_length:
        raise ConfigError("context_length: give one that fits the student's positions")
    context = cfg.context_length or teacher.config.n_positions
    if context > min(student.config.n_positions, teacher.config.n_positions):
        raise ConfigError(f"context_length: {context} is above the models' positions")
    alpha_cos = cfg.alpha_cos
    if alpha_cos == -1.0:
        alpha_cos = 1.0 if student.config.n_embd == teacher.config.n_embd else 0.0
    elif alpha_cos > 0 and student.config.n_embd != teacher.config.n_embd:
        raise ModelError("alpha_cos needs the student's hidden size to equal the teacher's")
    data = lm_data(dataset, context, cfg.seed, cfg.windows)
    spec = RunSpec(
        model=student,
        tokenizer=tokenizer,
        train_dataset=data.train,
        eval_datasets={"valid": data.valid, "train": data.train_sample},
        final_metrics=lm_final_metrics(data),
        card=ModelCard(
            task="lm",
            parent=Lineage.of(cfg.teacher, card, "distilled", student_init=how),
            distillation={
                "temperature": cfg.temperature,
                "alpha_ce": cfg.alpha_ce,
                "alpha_clm": cfg.alpha_clm,
                "alpha_cos": alpha_cos,
            },
            dataset=data.lineage(),
            context_length=context,
        ),
        tokens_per_step=cfg.batch_size * context,
        trainer_class=DistillTrainer,
        trainer_kwargs={
            "teacher": teacher,
            "temperature": cfg.temperature,
            "alpha_ce": cfg.alpha_ce,
            "alpha_clm": cfg.alpha_clm,
            "alpha_cos": alpha_cos,
        },
        dataset_dir=data.dataset_dir,
    )
    log.info("student: %d of the teacher's %d layers (%s)", layers, teacher.config.n_layer, how)
    return run_training(cfg, spec)
