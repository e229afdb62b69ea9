"""Translate template.yaml with samtranslator (run by .venv-sam's python; prints CloudFormation JSON)."""

import json
import sys

from samtranslator.parser.parser import Parser
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def main(path: str) -> None:
    with open(path) as handle:
        template = yaml_parse(handle.read())
    # as `sam package` would: local code locations become S3 locations
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://packaged/{props[key].strip('/')}"
    translated = transform(template, {}, NoManagedPolicies(), Parser())
    json.dump(translated, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
