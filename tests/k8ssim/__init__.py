"""k8ssim: a small in-memory Kubernetes API stand-in for tests (see README.md)."""
