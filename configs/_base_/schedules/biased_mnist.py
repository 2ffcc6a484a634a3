# Biased MNIST v2 trains with OccamNets' schedule (one recipe for its
# datasets).
_base_ = ['./occamnets.py']
