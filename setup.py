"""qhb-patroni: high availability for QHB, compatible with Patroni 3.0.2."""
import os
import re

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "qhb_patroni", "__init__.py"), encoding="utf-8") as f:
    version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)  # type: ignore[union-attr]

with open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="qhb-patroni",
    version=version,
    description="High-availability daemon for QHB, compatible with Patroni 3.0.2",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["qhb_patroni", "qhb_patroni.*", "patronictl", "patronictl.*"]),
    # Ranges: the lower bounds are the first releases with the APIs we call
    # (psycopg2 2.8: errors module; python-etcd 0.4.5: the last release, v2 API;
    # py-consul 1.1: the maintained fork of python-consul; click 8: current option
    # API; urllib3 1.26: Timeout/retries as used); the upper bounds stop at the next
    # major release, whose breaking changes we have not tested.
    install_requires=[
        "psycopg2>=2.8,<3",
        "python-etcd>=0.4.5,<0.5",
        "py-consul>=1.1,<2",
        "PyYAML>=5.4,<7",
        "click>=8.0,<9",
        "urllib3>=1.26,<3",
        "prettytable>=2.0,<4",
    ],
    entry_points={
        "console_scripts": [
            "patroni = qhb_patroni.cli:main",
            "qhb-patroni = qhb_patroni.cli:main",
            "patronictl = patronictl.cli:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.9",
        "Operating System :: POSIX :: Linux",
        "Topic :: Database",
    ],
)
