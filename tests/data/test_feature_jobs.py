"""The feature stage's number of worker processes follows the amount of audio (asrkit.data.features)."""

from asrkit.data.features import MIN_SECONDS_PER_JOB, choose_num_jobs


def test_a_small_split_gets_one_job_whatever_the_cap():
    assert choose_num_jobs(0.0, 8) == 1
    assert choose_num_jobs(MIN_SECONDS_PER_JOB * 1.99, 8) == 1  # a second worker would get less than its share


def test_each_job_gets_at_least_its_share_of_audio_up_to_the_cap():
    assert choose_num_jobs(MIN_SECONDS_PER_JOB * 2, 8) == 2
    assert choose_num_jobs(MIN_SECONDS_PER_JOB * 5.5, 8) == 5
    assert choose_num_jobs(MIN_SECONDS_PER_JOB * 100, 8) == 8
    assert choose_num_jobs(MIN_SECONDS_PER_JOB * 100, 1) == 1


def test_no_minimum_keeps_the_number_asked_for():
    assert choose_num_jobs(1.0, 2, min_seconds_per_job=0) == 2


def test_the_share_can_be_set():
    assert choose_num_jobs(100.0, 4, min_seconds_per_job=30) == 3
