from setuptools import find_packages, setup

package_name = 'chef_sim'

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
    description='MuJoCo RGB-Stacking cell and ROS 2 bridge.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'sim_bridge = chef_sim.bridge_node:main',
            'hardware_emulator = chef_sim.hardware_emulator_node:main_hardware',
            'servo_emulator = chef_sim.hardware_emulator_node:main_servo',
        ],
    },
)
