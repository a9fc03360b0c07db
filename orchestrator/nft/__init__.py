"""DiffusionNFT (`train.algorithm=nft`): the objective as plain functions (no Ray). May import actors,
policies and common; the learner runs it through the same DeepSpeed engine as GRPO's loss."""
