"""Training: the Fast-GRPO controller loop and its parts, and the supervised stages before it.

`train.py` is the `prismrl train` entry point; `trainer.py` the controller loop (rollout, reward
phase, advantages, experience buffer, learner step, validation); `clip_sets.py` picks the training
and validation clips and checks that they are disjoint; `roles.py` builds the Ray roles;
`reward_phase.py` grades a step's samples; `buffer.py` holds experience refs; `checkpoint_store.py`
writes and lists full-state checkpoints; `pretrain.py` (flow-matching pretraining of the policy)
and `planner_training.py` (the synth CoT planner) train what RL starts from. May import
`config`, `data`, `grpo`, `runtime`, `evaluation.paired`, `actors`, `policies`, `rewards`, `common`.
"""
