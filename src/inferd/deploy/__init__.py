"""How inferd is deployed: worker processes, Ray Serve, Kubernetes."""
