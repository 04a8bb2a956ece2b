"""Shared fixtures of the inspection tests: the digits LeNet and its test split."""
import pytest

import seethrough as see


@pytest.fixture(scope="module")
def lenet():
    return see.zoo.load("lenet-digits")[0]


@pytest.fixture(scope="module")
def digits():
    return see.zoo.digits("test")[0]
