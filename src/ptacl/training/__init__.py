"""Training stages (Lightning) and the infrastructure they share (`ptacl.training.common`)."""
