"""Screenshots of the review page's main views for the README (headless Chromium).

Usage (a store with campaigns, and the page served on it):
    .venv/bin/invdes review --store sqlite:///PATH/campaigns.db --port 8799 &
    .venv/bin/python bench/review_screenshots.py --url http://127.0.0.1:8799 \
        --campaign demo-charge-transfer --out flows/review/screenshots
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    """Saves the campaigns list, a campaign and its best candidate as PNG."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8799")
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--out", type=Path, default=Path("flows/review/screenshots"))
    args = parser.parse_args()
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1500"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(args.url + "/")
        time.sleep(1)
        driver.save_screenshot(str(args.out / "campaigns.png"))
        driver.get(f"{args.url}/campaigns/{args.campaign}")
        time.sleep(4)
        driver.save_screenshot(str(args.out / "campaign.png"))
        first = driver.find_element("css selector", "#candidate-body tr a").get_attribute("href")
        driver.get(first)
        time.sleep(2)
        driver.save_screenshot(str(args.out / "candidate.png"))
    finally:
        driver.quit()
    print(f"wrote {args.out}/campaigns.png, campaign.png, candidate.png")


if __name__ == "__main__":
    main()
