from setuptools import find_packages, setup

package_name = 'chef_trainer'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='CHEF developers',
    maintainer_email='chef-dev@example.com',
    description='Online and offline learners and the trainer node.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'trainer = chef_trainer.trainer_node:main',
            'learn = chef_trainer.cli:main',
        ],
    },
)
