from setuptools import find_packages, setup

package_name = 'chef_real'

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
    description='Real RGB-Stacking cell: description, adapters, pixel reward, episode manager.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'state_adapter = chef_real.state_adapter_node:main',
            'camera_adapter = chef_real.camera_adapter_node:main',
            'pixel_reward = chef_real.pixel_reward_node:main',
            'episode_manager = chef_real.episode_manager_node:main',
        ],
    },
)
