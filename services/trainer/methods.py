"""One TRL trainer per method, all on a PEFT LoRA adapter (runs inside the job's worker).

- grpo: `GRPOTrainer` samples `num_generations` answers per prompt from the current policy and
  scores them with the job's reward function (`dreamforge.rewards.as_trl_reward`), with a KL
  penalty `beta` against the base (the adapter disabled);
- dpo: `DPOTrainer` on (prompt, image, chosen, rejected);
- sft: `SFTTrainer` on (prompt, image, completion), loss on the completion only.

What the default model needed for TRL: nothing beyond passing the processor (not the
tokenizer) as `processing_class`, so images expand into image tokens; GRPO reads the image
from an `image` column and DPO/SFT from an `images` list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset
from peft import LoraConfig
from transformers import TrainerCallback

from dreamforge.rewards import RewardFunctionSpec, as_trl_reward
from services.trainer.config import JobConfig

#: LoRA on the text model's attention. Tried: also the vision tower's layers and the connector —
#: no held-out gain in SFT on captions or queries, so the adapters stay text-only (and smaller).
TARGET_MODULES = r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj)"


def lora_config(cfg: JobConfig) -> LoraConfig:
    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=TARGET_MODULES)


def _common(cfg: JobConfig, out_dir: Path, use_cpu: bool) -> dict[str, Any]:
    return {"output_dir": str(out_dir), "max_steps": cfg.steps, "learning_rate": cfg.learning_rate,
            "logging_steps": 1, "report_to": [], "save_strategy": "no", "use_cpu": use_cpu, "seed": cfg.seed,
            "disable_tqdm": True, "lr_scheduler_type": "constant", "bf16": False, "fp16": False,
            "dataloader_num_workers": 0, "remove_unused_columns": False}


def build_trainer(method: str, model: Any, processor: Any, cfg: JobConfig, rows: list[dict[str, Any]],
                  spec: RewardFunctionSpec | None, out_dir: Path, callback: TrainerCallback, use_cpu: bool,
                  peft: bool) -> Any:
    """The TRL trainer for `method`, ready to `.train()`. `peft=False` when `model` already carries
    a trainable adapter (training continues from a previous version)."""
    dataset = Dataset.from_list(rows)
    peft_config = lora_config(cfg) if peft else None
    common = _common(cfg, out_dir, use_cpu)
    if method == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        if spec is None:
            raise ValueError("a grpo job needs a reward function")
        grpo = GRPOConfig(**common, per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
                          num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                          temperature=cfg.temperature, top_k=cfg.top_k, beta=cfg.beta)
        reward: Any = as_trl_reward(spec)
        return GRPOTrainer(model=model, processing_class=processor, reward_funcs=[reward], args=grpo,
                           train_dataset=dataset, peft_config=peft_config, callbacks=[callback])
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        dpo = DPOConfig(**common, per_device_train_batch_size=cfg.prompts_per_step, beta=cfg.beta)
        return DPOTrainer(model=model, processing_class=processor, args=dpo, train_dataset=dataset,
                          peft_config=peft_config, callbacks=[callback])
    if method == "sft":
        from trl import SFTConfig, SFTTrainer

        sft = SFTConfig(**common, per_device_train_batch_size=cfg.prompts_per_step, completion_only_loss=True)
        return SFTTrainer(model=model, processing_class=processor, args=sft, train_dataset=dataset,
                          peft_config=peft_config, callbacks=[callback])
    raise ValueError(f"unknown method {method!r}")
