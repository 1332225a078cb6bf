"""Plain ``nn.Module`` networks. Nothing here imports Lightning."""
