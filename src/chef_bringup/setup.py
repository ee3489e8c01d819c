import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'chef_bringup'


def tree(root):
    """data_files entries that install every file under `root` (followed symlinks) into share/."""
    out = {}
    for path in sorted(glob(os.path.join(root, '**', '*'), recursive=True)):
        if os.path.isfile(path):
            dest = os.path.join('share', package_name, os.path.dirname(path))
            out.setdefault(dest, []).append(path)
    return list(out.items())


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ] + tree('launch') + tree('config'),
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='CHEF developers',
    maintainer_email='chef-dev@example.com',
    description='Launch files, the chef command line and the node-graph runner.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'chef = chef_bringup.cli:main',
            'dds_probe_pub = chef_bringup.probe:pub_main',
            'dds_probe_sub = chef_bringup.probe:sub_main',
        ],
    },
)
