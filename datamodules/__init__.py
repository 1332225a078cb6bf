"""One LightningDataModule per data set (real releases and the embedded synthetic default)."""
