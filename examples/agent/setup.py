from setuptools import setup

setup(name="agent", version="1.0", scripts=["agent", "probe", "calls"])
