# LfF's Colored MNIST MLP (mlp_colored_mnist.py) with the method plug point.
_base_ = ['../../mlp_colored_mnist.py']
model = dict(head=dict(type='DebiasLinearClsHead'))
