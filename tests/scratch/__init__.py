"""Tests of finetune_kit.scratch: every op against PyTorch, in float64 and float32."""
