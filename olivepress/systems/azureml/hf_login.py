"""The job side of `hf_token: true`: log in to the Hugging Face hub with the key vault secret `hf-token`.

    python -m olivepress.systems.azureml.hf_login      (KEYVAULT_NAME names the vault; the job's identity reads it)

The token is saved where huggingface_hub looks for it (HF_HOME), so the job's downloads that follow use it.
"""

import json
import os
import sys
import urllib.request

from olivepress.systems.azureml.setup import HF_SECRET

KEYVAULT_SCOPE = "https://vault.azure.net/.default"
API_VERSION = "7.4"


def read_secret(vault: str, name: str) -> str:
    """The secret's value, read with the job's Azure identity through the key vault REST API."""
    from azure.identity import DefaultAzureCredential

    token = DefaultAzureCredential().get_token(KEYVAULT_SCOPE).token
    request = urllib.request.Request(f"https://{vault}.vault.azure.net/secrets/{name}?api-version={API_VERSION}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["value"]


def main() -> int:
    from huggingface_hub import login

    vault = os.environ.get("KEYVAULT_NAME")
    if not vault:
        print("hf_login: KEYVAULT_NAME is not set", file=sys.stderr)
        return 2
    login(token=read_secret(vault, HF_SECRET), add_to_git_credential=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
