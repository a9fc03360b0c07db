"""GRPO maths in plain functions: group-relative advantages, the PPO-clip loss with KL, gradient SNR."""
