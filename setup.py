from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


setup(
    name='occam-plugin',
    version='0.1.0',
    description='OccamNets and other bias-mitigation methods as an '
    'mmpretrain / timm plugin',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['occam_plugin', 'occam_plugin.*']),
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.6',
        'torchvision',
        'mmengine==0.10.7',
        'mmcv-lite==2.1.0',
        'mmpretrain==1.2.0',
        'timm>=1.0',
        'numpy',
        'pillow',
        'h5py',
        'scikit-learn',
        'mlxtend',
        'rich',
        'matplotlib',
    ],
    extras_require={'tests': ['pytest']},
    license='Apache-2.0',
)
